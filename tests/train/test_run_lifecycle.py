"""How a run starts, stops and continues: short runs, pause / resume, --max-steps, Ctrl-C (issue 9)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import lightning as L
import pytest

from lungcad.cli import main
from lungcad.train.control import write_command
from lungcad.train.fit import fit
from lungcad.train.state import TrainingState
from tests.train.conftest import tiny_config, tiny_config_file

QUIET = {"use_mlflow": False, "show_progress": False}


class AtStep(L.Callback):
    """Calls ``action(run_dir)`` once, after optimiser step ``step``."""

    def __init__(self, run_dir: Path, step: int, action: object) -> None:
        self.run_dir, self.step, self.action, self.done = run_dir, step, action, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step and not self.done:
            self.done = True
            self.action(self.run_dir)  # type: ignore[operator]


def _pause(run: Path) -> None:
    write_command(run, "pause", "test")


def _ctrl_c(run: Path) -> None:
    signal.raise_signal(signal.SIGINT)


def _kill(run: Path) -> None:
    raise KeyboardInterrupt


@pytest.mark.slow
def test_max_steps_below_one_epoch_finishes_with_a_measured_cpm(
    tiny_cohort: Path, tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 2: --max-steps 2 with 5 steps per epoch crashed in EarlyStopping ("val/cpm not available").

    Defect 3: the CPM of such a run is measured at its end, not reported as a placeholder.
    """
    config = tiny_config_file(tmp_path / "tiny.yaml", steps_per_epoch=5, hard_negatives_per_scan=0)
    run = tmp_path / "short"
    argv = ["--config", str(config), "train", "--data", str(tiny_cohort), "--run-dir", str(run)]
    argv += ["--cache-dir", str(tiny_cache), "--max-steps", "2", "--no-mlflow", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "finished" and doc["step"] == 2 and doc["total_steps"] == 2
    assert doc["epoch"] == 1 and doc["total_epochs"] == 2  # 1-based: the run ended inside its 1st epoch
    assert isinstance(doc["best_cpm"], float) and doc["last_cpm"] == doc["best_cpm"]
    assert Path(doc["best_checkpoint"]).exists() and Path(doc["last_checkpoint"]).exists()
    state = json.loads((run / "status.json").read_text())
    assert state["best_cpm"] == doc["best_cpm"] and state["epoch"] == 1
    assert json.loads((run / "run.json").read_text())["max_steps"] == 2


@pytest.mark.slow
def test_unmeasured_cpm_is_reported_as_not_measured(
    tiny_cohort: Path, tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 3: with no validation CPM (no validation scan used) the run said "best CPM 0.000"."""
    config = tiny_config_file(
        tmp_path / "tiny.yaml", epochs=1, steps_per_epoch=1, val_scans_max=0, hard_negatives_per_scan=0
    )
    run = tmp_path / "runs" / "nocpm"
    argv = ["--config", str(config), "train", "--data", str(tiny_cohort), "--run-dir", str(run)]
    assert main([*argv, "--cache-dir", str(tiny_cache), "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert "best validation CPM not measured" in out and "0.000" not in out
    state = json.loads((run / "status.json").read_text())
    assert state["best_cpm"] is None and state["last_cpm"] is None
    assert not (run / "checkpoints" / "best.ckpt").exists()
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert "0.000" not in capsys.readouterr().out


@pytest.mark.slow
def test_resume_after_pause_consumes_the_pause(tiny_cohort: Path, tiny_cache: Path, tmp_path: Path) -> None:
    """Defect 4: `train --resume` after `train-control RUN pause` paused again after one step."""
    cfg = tiny_config(epochs=1, steps_per_epoch=3, hard_negatives_per_scan=0)
    run = tmp_path / "p"
    paused = fit(
        cfg, tiny_cohort, run, cache_dir=tiny_cache, extra_callbacks=[AtStep(run, 1, _pause)], **QUIET
    )
    assert paused.state.status == "paused" and paused.state.step == 1
    resumed = fit(cfg, [], run, resume=True, cache_dir=tiny_cache, **QUIET)
    assert resumed.state.status == "finished" and resumed.state.step == 3
    assert json.loads((run / "control.json").read_text())["command"] == "run"
    assert any("'pause' command in control.json was cleared" in n for n in resumed.notes)


@pytest.mark.slow
def test_resume_keeps_the_runs_max_steps(tiny_cohort: Path, tiny_cache: Path, tmp_path: Path) -> None:
    """Defect 5: a resumed run forgot --max-steps and trained all its epochs (6 steps instead of 4)."""
    cfg = tiny_config(epochs=2, steps_per_epoch=3, hard_negatives_per_scan=0)
    run = tmp_path / "m"
    fit(
        cfg,
        tiny_cohort,
        run,
        cache_dir=tiny_cache,
        max_steps=4,
        extra_callbacks=[AtStep(run, 2, _pause)],
        **QUIET,
    )
    assert json.loads((run / "run.json").read_text())["max_steps"] == 4
    write_command(run, "run")
    resumed = fit(cfg, tiny_cohort, run, resume=True, cache_dir=tiny_cache, **QUIET)
    assert resumed.state.status == "finished" and resumed.state.step == 4 and resumed.state.total_steps == 4
    assert resumed.state.epoch == 2  # step 4 is in the 2nd epoch of 3 steps (1-based, as the bar shows)


@pytest.mark.slow
def test_ctrl_c_in_first_epoch_leaves_a_resumable_run(
    tiny_cohort: Path, tiny_cache: Path, tmp_path: Path
) -> None:
    """Defect 6: Ctrl-C in epoch 1 left a run that could neither be resumed nor restarted.

    A first Ctrl-C stops at the step boundary with a consistent last.ckpt; an abort before any checkpoint
    (a second Ctrl-C, a crash) is resumed from step 0.
    """
    cfg = tiny_config(epochs=1, steps_per_epoch=3, hard_negatives_per_scan=0)
    handler = signal.getsignal(signal.SIGINT)
    run = tmp_path / "graceful"
    stopped = fit(
        cfg, tiny_cohort, run, cache_dir=tiny_cache, extra_callbacks=[AtStep(run, 1, _ctrl_c)], **QUIET
    )
    assert stopped.state.status == "interrupted" and stopped.state.step == 1
    assert "--resume" in TrainingState.read(run).message and (run / "last.ckpt").exists()
    assert signal.getsignal(signal.SIGINT) is handler
    assert fit(cfg, [], run, resume=True, cache_dir=tiny_cache, **QUIET).state.step == 3

    run = tmp_path / "aborted"
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tiny_cohort, run, cache_dir=tiny_cache, extra_callbacks=[AtStep(run, 1, _kill)], **QUIET)
    state = TrainingState.read(run)
    assert state.status == "interrupted" and "lungcad train --resume" in state.message
    assert not (run / "last.ckpt").exists()
    assert signal.getsignal(signal.SIGINT) is handler  # Lightning leaves SIGINT ignored; fit restores it
    again = fit(cfg, [], run, resume=True, cache_dir=tiny_cache, **QUIET)
    assert again.state.status == "finished" and again.state.step == 3
    assert any("starting at step 0" in note for note in again.notes)


def test_max_steps_must_be_positive_or_minus_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data", str(tmp_path), "--run-dir", str(tmp_path / "r"), "--max-steps", "0"]
    assert main(argv) == 2
    assert "--max-steps must be >= 1 (or -1 for no limit), got 0" in capsys.readouterr().err


def test_epoch_numbers_of_the_progress_bar_are_1_based() -> None:
    """Defect 20: the bar said "Epoch 0/1" for the epoch status.json called 1 (of 2)."""
    from types import SimpleNamespace

    from lungcad.train.progress import EpochProgressBar

    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=2)  # type: ignore[assignment]
    assert bar._get_train_description(0).strip() == "Epoch 1/2"
    assert bar._get_train_description(1).strip() == "Epoch 2/2"
