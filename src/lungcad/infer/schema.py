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

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lungcad.contracts import SCHEMA_VERSION, scan_result_adapter
from lungcad.fileio import atomic_write_text

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def scan_result_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one ``result.json`` document (``ScanResult.to_dict()``)."""
    schema = scan_result_adapter().json_schema(mode="serialization")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:lungcad:schema:scan_result:{SCHEMA_VERSION}",
        **schema,
        "title": f"lungcad ScanResult {SCHEMA_VERSION}",
    }


def schema_text() -> str:
    """The published file's exact text: sorted keys, two-space indent, final newline."""
    return json.dumps(scan_result_schema(), indent=2, sort_keys=True) + "\n"


def schema_path(folder: str | Path) -> Path:
    return Path(folder) / f"scan_result-{SCHEMA_VERSION}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lungcad.infer.schema", description="write or check the published result schema"
    )
    parser.add_argument("folder", type=Path, help="folder of the published schemas (docs/schema)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = parser.parse_args(argv)
    path = schema_path(args.folder)
    if args.check:
        current = path.read_text() if path.is_file() else None
        if current != schema_text():
            print(f"{path} is stale: run python -m lungcad.infer.schema {args.folder}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    atomic_write_text(path, schema_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
