"""The public, versioned JSON Schema of ``comparison.json``, generated from the ``Comparison`` dataclasses.

Mirrors ``lungcad.infer.schema`` (the result schema): one definition (``lungcad.longitudinal.contract``),
``Comparison.to_dict`` serialises through the adapter whose serialisation schema is published here as
``docs/schema/comparison-<version>.json``; a test checks the published file equals ``comparison_schema()``.

Regenerate after a change to the contract (bump ``COMPARISON_SCHEMA_VERSION`` for an incompatible one)::

    python -m lungcad.longitudinal.schema docs/schema          # writes docs/schema/comparison-<version>.json
    python -m lungcad.longitudinal.schema --check docs/schema  # exit 1 when the published file is stale
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lungcad.longitudinal.contract import COMPARISON_SCHEMA_VERSION, comparison_adapter
from lungcad.schema_publish import PublishedSchema

COMPARISON_SCHEMA = PublishedSchema(
    name="comparison",
    title="lungcad Comparison",
    version=COMPARISON_SCHEMA_VERSION,
    adapter=comparison_adapter,
    module="lungcad.longitudinal.schema",
    what="comparison",
)


def comparison_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one ``comparison.json`` document (``Comparison.to_dict()``)."""
    return COMPARISON_SCHEMA.schema()


def schema_text() -> str:
    """The published file's exact text: sorted keys, two-space indent, final newline."""
    return COMPARISON_SCHEMA.text()


def schema_path(folder: str | Path) -> Path:
    return COMPARISON_SCHEMA.path(folder)


def main(argv: list[str] | None = None) -> int:
    return COMPARISON_SCHEMA.main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
