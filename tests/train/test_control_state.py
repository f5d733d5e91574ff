from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.errors import InputError
from lungcad.train.control import Command, ControlFile, write_command
from lungcad.train.module import warmup_cosine
from lungcad.train.state import TrainingState


def test_control_file_roundtrip(tmp_path: Path) -> None:
    control = ControlFile(tmp_path)
    assert control.read() is Command.RUN  # no file: keep running
    write_command(tmp_path, "pause", "maintenance")
    assert control.read() is Command.PAUSE
    assert json.loads((tmp_path / "control.json").read_text()) == {
        "command": "pause",
        "reason": "maintenance",
    }
    (tmp_path / "control.json").write_text("{broken")
    assert control.read() is Command.PAUSE  # a half-written file keeps the last command


def test_write_command_validation(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="command must be one of"):
        write_command(tmp_path, "halt")
    with pytest.raises(InputError, match="run folder does not exist"):
        write_command(tmp_path / "nope", "stop")


def test_state_roundtrip(tmp_path: Path) -> None:
    state = TrainingState(run_id="r", status="running", step=5, losses={"total": 1.5})
    state.write(tmp_path)
    again = TrainingState.read(tmp_path)
    assert again.step == 5 and again.losses == {"total": 1.5} and again.status == "running"


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.01), (49, 0.5), (99, 1.0), (100, 1.0), (600, 0.02 + 0.98 * 0.5), (1100, 0.02), (5000, 0.02)],
)
def test_warmup_cosine_hand_computed(step: int, expected: float) -> None:
    assert warmup_cosine(step, warmup=100, total=1100) == pytest.approx(expected)


def test_runs_cli_lists_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lungcad.cli import main

    (tmp_path / "r1").mkdir()
    TrainingState(run_id="r1", status="finished", step=40, best_cpm=0.81).write(tmp_path / "r1")
    assert main(["runs", str(tmp_path), "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["run_id"] == "r1" and doc["best_cpm"] == 0.81
    assert main(["runs", str(tmp_path)]) == 0
    assert "0.810" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "none")]) == 2
