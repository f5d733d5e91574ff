"""Shared CLI plumbing: the global options, the per-invocation state, consoles and JSON output.

Nothing here is created at import: the typer app is built by :func:`lungcad.cli.app.build_app`, and the
state of one invocation (the ``--config`` path) is a :class:`CliState` that :func:`invocation`
installs for the duration of one command, so two ``main([...])`` calls in one process never see each other's
options.  (A ``ContextVar`` rather than click's context object: typer vendors its own click, whose
``get_current_context`` is private.)
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import typer
from rich.console import Console

from lungcad.config import LungcadConfig, load_config
from lungcad.log import configure_logging


@dataclass
class CliState:
    """What the global options set for one invocation of the app."""

    config_path: Path | None = None


# The key under which the running invocation's state is found; it holds no value until ``invocation()``.
_CURRENT: ContextVar[CliState] = ContextVar("lungcad_cli_state")


@contextmanager
def invocation() -> Iterator[CliState]:
    """Install a fresh :class:`CliState` for one run of the app, and remove it afterwards."""
    state = CliState()
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


def current_state() -> CliState:
    """The state of the running invocation; a fresh default one outside it (a test calling a helper)."""
    return _CURRENT.get(None) or CliState()


@functools.cache
def _console(stderr: bool) -> Console:
    # One per process, made on first use (like ``rich.get_console()``), never at import.  Per process rather
    # than per invocation: rich's progress bars refresh from their own thread, which must reach the very
    # console the command printed to, and a ContextVar is not visible in that thread.  The console holds no
    # options: it resolves sys.stdout / sys.stderr at each write, so pytest's capsys still sees its output.
    return Console(stderr=stderr)


class _LazyConsole:
    """Stands for the process's stdout (or stderr) console, so command modules can write ``console.print``."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(_console(self._stderr), name)

    # Dunder methods bypass ``__getattr__``; rich's Live uses the console as a context manager.
    def __enter__(self) -> Console:
        return _console(self._stderr).__enter__()

    def __exit__(self, *exc: object) -> None:
        _console(self._stderr).__exit__(*exc)


console = cast(Console, _LazyConsole(stderr=False))
err_console = cast(Console, _LazyConsole(stderr=True))


def _print_version(value: bool) -> None:
    if value:
        from lungcad import package_version

        console.print(f"lungcad {package_version()}", highlight=False)
        raise typer.Exit()


def global_options(
    config: Path | None = typer.Option(None, "--config", help="user YAML merged over configs/default.yaml"),
    log_json: bool = typer.Option(False, "--log-json", help="log JSON lines (stage timings) on stderr"),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR"),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """The app's callback: configure logging and record the options for this invocation."""
    configure_logging(json=log_json, level=log_level)
    current_state().config_path = config


def get_config(overrides: dict[str, Any] | None = None) -> LungcadConfig:
    """The configuration of this invocation (``--config`` merged over the defaults, then ``overrides``)."""
    return load_config(current_state().config_path, overrides=overrides)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
