"""The published OpenAPI document of the service, generated from the routes and their pydantic schemas.

``docs/api/openapi.json`` is the published copy; a test checks it equals :func:`openapi_document`, so a
route or schema change without regenerating it fails CI.  The live service serves the same document at
``/api/v1/openapi.json`` (and interactive docs at ``/api/v1/docs``)::

    python -m lungcad.service.openapi docs/api           # writes docs/api/openapi.json
    python -m lungcad.service.openapi --check docs/api   # exit 1 when the published file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lungcad.fileio import atomic_write_text

FILENAME = "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of ``create_app`` (built without opening a data folder)."""
    from fastapi.openapi.utils import get_openapi

    from lungcad.service.app import create_app
    from lungcad.service.settings import load_settings

    # the routes do not depend on settings; a placeholder folder is never created (no lifespan runs)
    app = create_app(load_settings("/nonexistent-lungcad-openapi", environ={}))
    return get_openapi(
        title=app.title,
        version="v1",  # the API's version, not the package's: the file changes only when the API does
        summary=app.summary,
        routes=app.routes,
    )


def document_text() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lungcad.service.openapi", description=__doc__.split("\n")[0]
    )
    parser.add_argument("folder", type=Path, help="folder of the published document (docs/api)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = parser.parse_args(argv)
    path = args.folder / FILENAME
    text = document_text()
    if args.check:
        if not path.is_file() or path.read_text() != text:
            print(f"{path} is stale: run python -m lungcad.service.openapi {args.folder}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    args.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
