"""The ``lungcad`` command line: each command module has a ``register(app)``, called by :func:`build_app`."""

from lungcad.process_memory import exit_now, tune_for_short_process

tune_for_short_process()  # before numpy is imported (below): the CLI is a short-lived process

from rich.markup import escape  # noqa: E402

from lungcad.cli.app import build_app  # noqa: E402
from lungcad.cli.common import err_console, invocation  # noqa: E402
from lungcad.errors import LungcadError  # noqa: E402

__all__ = ["build_app", "main", "run"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.

    Usage errors (unknown option, missing argument) are reported by typer itself, also with exit code 2.
    """
    app = build_app()
    with invocation():
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


def run() -> None:
    """The ``lungcad`` command (and ``python -m lungcad``): :func:`main`, then the process ends at once.

    The exit code is :func:`main`'s (2 for a user error); see ``process_memory.exit_now`` for why the
    interpreter's teardown is skipped.  Tests call :func:`main`, which returns.
    """
    exit_now(main())


if __name__ == "__main__":  # pragma: no cover
    run()
