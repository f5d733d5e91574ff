"""Publishing a contract's JSON Schema: the one mechanism behind ``lungcad.infer.schema`` (``result.json``)
and ``lungcad.longitudinal.schema`` (``comparison.json``).

A contract is serialised through a pydantic ``TypeAdapter``; its serialisation schema, wrapped with the
draft 2020-12 dialect, a ``urn:lungcad:schema:<name>:<version>`` id and a title, is the published file
``<folder>/<name>-<version>.json`` (sorted keys, two-space indent, final newline).  So the written
documents and the schema cannot disagree, and a test compares the committed file with ``text()``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lungcad.fileio import atomic_write_text

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class PublishedSchema:
    """One published schema.

    Attributes:
        name: file stem and id kind, e.g. ``scan_result``.
        title: e.g. ``lungcad ScanResult``; the version is appended.
        version: the contract's schema version, e.g. ``2.2``.
        adapter: returns the contract's pydantic ``TypeAdapter``.
        module: the module to run to regenerate the file (named in the stale message).
        what: the document, for the command's help (``result``, ``comparison``).
    """

    name: str
    title: str
    version: str
    adapter: Callable[[], Any]
    module: str
    what: str

    def schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of one document."""
        body = self.adapter().json_schema(mode="serialization")
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:lungcad:schema:{self.name}:{self.version}",
            **body,
            "title": f"{self.title} {self.version}",
        }

    def text(self) -> str:
        """The published file's exact text: sorted keys, two-space indent, final newline."""
        return json.dumps(self.schema(), indent=2, sort_keys=True) + "\n"

    def path(self, folder: str | Path) -> Path:
        return Path(folder) / f"{self.name}-{self.version}.json"

    def main(self, argv: list[str] | None = None) -> int:
        """``python -m <module> FOLDER [--check]``: write the file, or exit 1 when it is stale."""
        parser = argparse.ArgumentParser(
            prog=f"python -m {self.module}", description=f"write or check the published {self.what} schema"
        )
        parser.add_argument("folder", type=Path, help="folder of the published schemas (docs/schema)")
        parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
        args = parser.parse_args(argv)
        path = self.path(args.folder)
        if args.check:
            current = path.read_text() if path.is_file() else None
            if current != self.text():
                print(f"{path} is stale: run python -m {self.module} {args.folder}", file=sys.stderr)
                return 1
            print(f"{path} is up to date")
            return 0
        atomic_write_text(path, self.text())
        print(f"wrote {path}")
        return 0
