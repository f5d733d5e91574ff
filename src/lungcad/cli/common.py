"""Shared CLI plumbing: the typer app, global options, error handling and JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from lungcad.config import LungcadConfig, load_config
from lungcad.log import configure_logging

app = typer.Typer(
    name="lungcad",
    help="Lung-nodule CAD for chest CT: intake, ground truth, synthetic cohorts, detection, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)


class _State:
    config_path: Path | None = None


state = _State()


@app.callback()
def _global_options(
    config: Path | None = typer.Option(None, "--config", help="user YAML merged over configs/default.yaml"),
    log_json: bool = typer.Option(False, "--log-json", help="log JSON lines instead of console text"),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR"),
) -> None:
    configure_logging(json=log_json, level=log_level)
    state.config_path = config


def get_config(overrides: dict[str, Any] | None = None) -> LungcadConfig:
    return load_config(state.config_path, overrides=overrides)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
