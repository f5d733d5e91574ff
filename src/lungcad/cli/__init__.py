"""The ``lungcad`` command line.  Each command group lives in its own module and registers on ``app``."""

import importlib
import sys

from rich.markup import escape

from lungcad.cli.common import app, err_console
from lungcad.errors import LungcadError

COMMAND_MODULES = ("intake", "groundtruth", "synth", "train", "detect", "evaluate")


def _register() -> None:
    # Imported for their side effect: each module adds its commands to ``app``.  importlib rather than
    # ``from lungcad.cli import annotations``, which a ``from __future__ import annotations`` would shadow.
    for name in COMMAND_MODULES:
        importlib.import_module(f"lungcad.cli.{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.

    Usage errors (unknown option, missing argument) are reported by typer itself, also with exit code 2.
    """
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except LungcadError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except SystemExit as exc:  # typer's normal exit, including --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
