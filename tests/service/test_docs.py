"""docs/service.md stays true to the code: every setting documented, the permission table the code's."""

from __future__ import annotations

from pathlib import Path

from lungcad.service.security import permission_table
from lungcad.service.settings import ENV_PREFIX, ServiceSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [n for n in ServiceSettings.model_fields if f"`{ENV_PREFIX}{n.upper()}`" not in text]
    assert not missing, f"docs/service.md does not document: {missing}"


def test_permission_table_is_the_codes() -> None:
    text = DOC.read_text()
    start = text.index("<!-- permission-table -->\n") + len("<!-- permission-table -->\n")
    end = text.index("<!-- /permission-table -->")
    assert text[start:end] == permission_table(), "paste lungcad.service.security.permission_table()"
