"""The public, versioned JSON Schema of ``comparison.json``, generated from the ``Comparison`` dataclasses.

Mirrors ``lungcad.infer.schema`` (the result schema): one definition (``lungcad.longitudinal.contract``),
``Comparison.to_dict`` serialises through the adapter whose serialisation schema is published here as
``docs/schema/comparison-<version>.json``; a test checks the published file equals ``comparison_schema()``.

Regenerate after a change to the contract (bump ``COMPARISON_SCHEMA_VERSION`` for an incompatible one)::

    python -m lungcad.longitudinal.schema docs/schema          # writes docs/schema/comparison-<version>.json
    python -m lungcad.longitudinal.schema --check docs/schema  # exit 1 when the published file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lungcad.fileio import atomic_write_text
from lungcad.longitudinal.contract import COMPARISON_SCHEMA_VERSION, comparison_adapter

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def comparison_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one ``comparison.json`` document (``Comparison.to_dict()``)."""
    schema = comparison_adapter().json_schema(mode="serialization")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:lungcad:schema:comparison:{COMPARISON_SCHEMA_VERSION}",
        **schema,
        "title": f"lungcad Comparison {COMPARISON_SCHEMA_VERSION}",
    }


def schema_text() -> str:
    """The published file's exact text: sorted keys, two-space indent, final newline."""
    return json.dumps(comparison_schema(), indent=2, sort_keys=True) + "\n"


def schema_path(folder: str | Path) -> Path:
    return Path(folder) / f"comparison-{COMPARISON_SCHEMA_VERSION}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lungcad.longitudinal.schema",
        description="write or check the published comparison schema",
    )
    parser.add_argument("folder", type=Path, help="folder of the published schemas (docs/schema)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = parser.parse_args(argv)
    path = schema_path(args.folder)
    if args.check:
        current = path.read_text() if path.is_file() else None
        if current != schema_text():
            print(
                f"{path} is stale: run python -m lungcad.longitudinal.schema {args.folder}", file=sys.stderr
            )
            return 1
        print(f"{path} is up to date")
        return 0
    atomic_write_text(path, schema_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
