"""The public, versioned JSON Schema of ``result.json``, generated from the ``ScanResult`` dataclasses.

There is one definition: the dataclasses of ``lungcad.contracts``.  ``ScanResult.to_dict`` serialises through
the same pydantic adapter whose serialisation schema this module publishes, so the written document and
the schema cannot disagree.  ``docs/schema/scan_result-<version>.json`` is the published copy (older
versions stay beside it as history); a test checks it equals ``scan_result_schema()``.

Regenerate after a change to the contract (and bump ``SCHEMA_VERSION`` in ``lungcad.contracts`` for any
incompatible one, with a note in ``docs/schema/MIGRATION.md``)::

    python -m lungcad.infer.schema docs/schema          # writes docs/schema/scan_result-<version>.json
    python -m lungcad.infer.schema --check docs/schema  # exit 1 when the published file is stale
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lungcad.contracts import SCHEMA_VERSION, scan_result_adapter
from lungcad.schema_publish import PublishedSchema

RESULT_SCHEMA = PublishedSchema(
    name="scan_result",
    title="lungcad ScanResult",
    version=SCHEMA_VERSION,
    adapter=scan_result_adapter,
    module="lungcad.infer.schema",
    what="result",
)


def scan_result_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one ``result.json`` document (``ScanResult.to_dict()``)."""
    return RESULT_SCHEMA.schema()


def schema_text() -> str:
    """The published file's exact text: sorted keys, two-space indent, final newline."""
    return RESULT_SCHEMA.text()


def schema_path(folder: str | Path) -> Path:
    return RESULT_SCHEMA.path(folder)


def main(argv: list[str] | None = None) -> int:
    return RESULT_SCHEMA.main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
