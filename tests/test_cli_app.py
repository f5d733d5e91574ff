"""The CLI is built by ``build_app()``: nothing is created at import, and invocations share no state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from lungcad.cli import build_app, main
from lungcad.cli.common import current_state

COMMANDS = {
    "ingest", "info", "lidc", "synth", "train", "train-control", "runs", "detect", "export-model",
    "evaluate", "evaluate-froc",
}  # fmt: skip


def _names(app: typer.Typer) -> set[str]:
    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_build_app_registers_every_command_in_a_new_app() -> None:
    a, b = build_app(), build_app()
    assert a is not b
    assert _names(a) == _names(b) and COMMANDS <= _names(a)  # the commands of before, at least


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("│ ")}
    assert COMMANDS <= listed


def test_importing_the_cli_creates_no_app_and_no_console() -> None:
    probe = """
import sys, typer
from rich.console import Console
import lungcad.cli, lungcad.cli.common as common
made = [f"{m}.{k}" for m, mod in list(sys.modules.items()) if m.startswith("lungcad.cli")
        for k, v in vars(mod).items() if isinstance(v, (typer.Typer, Console))]
print(made, common._console.cache_info().currsize)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "0"]


def test_config_option_lasts_one_invocation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "user.yaml"
    config.write_text("infer: {report_threshold: 0.7}\n")
    assert main(["--config", str(config), "runs", str(tmp_path)]) == 0
    assert current_state().config_path is None  # nothing left behind for the next call
    capsys.readouterr()
