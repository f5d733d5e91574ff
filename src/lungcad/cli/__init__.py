"""The ``lungcad`` command line.  Each command group lives in its own module and registers on ``app``."""

from __future__ import annotations

import sys

from lungcad.cli.common import app, err_console
from lungcad.errors import LungcadError


def _register() -> None:
    # Imported for their side effect: each module adds its commands to ``app``.
    from lungcad.cli import annotations, intake, synth  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except LungcadError as exc:
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except SystemExit as exc:  # typer/click exits (e.g. --help)
        return int(exc.code or 0)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # click usage errors arrive as ClickException subclasses
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return 2
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
