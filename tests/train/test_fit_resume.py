"""Training runs end to end; a run paused at step N and resumed ends with the uninterrupted run's weights."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from lungcad.cli import main
from lungcad.errors import InputError
from lungcad.train.control import write_command
from lungcad.train.fit import fit
from lungcad.train.state import TrainingState
from tests.train.conftest import tiny_config


class PauseAt(L.Callback):
    def __init__(self, run_dir: Path, step: int) -> None:
        self.run_dir, self.step = run_dir, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            write_command(self.run_dir, "pause", "test")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_pause_and_resume_reproduce_uninterrupted_run(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = tiny_config()
    cache = tmp_path / "cache"
    full = fit(cfg, tiny_cohort, tmp_path / "a", cache_dir=cache, use_mlflow=False, show_progress=False)
    assert full.state.status == "finished" and full.state.step == 6

    run_b = tmp_path / "b"
    paused = fit(
        cfg,
        tiny_cohort,
        run_b,
        cache_dir=cache,
        use_mlflow=False,
        show_progress=False,
        extra_callbacks=[PauseAt(run_b, 4)],  # mid-way through the second epoch
    )
    assert paused.state.status == "paused" and TrainingState.read(run_b).step == 4
    write_command(run_b, "run")
    resumed = fit(
        cfg, tiny_cohort, run_b, resume=True, cache_dir=cache, use_mlflow=False, show_progress=False
    )
    assert resumed.state.status == "finished" and resumed.state.step == 6

    a, b = _weights(tmp_path / "a"), _weights(run_b)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_without_checkpoint_and_rerun_refused(tiny_cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing to resume"):
        fit(tiny_config(), tiny_cohort, tmp_path / "r", resume=True, use_mlflow=False, show_progress=False)


def test_train_control_cli_rejects_bad_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-control", str(tmp_path), "explode"]) == 2
    assert "command must be one of" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tiny_cohort: Path, tmp_path: Path) -> None:
    """Lightning DDP with the gloo backend: two CPU processes train a few steps and agree on the result."""
    cfg = tiny_config(epochs=1, steps_per_epoch=2, hard_negatives_per_scan=0)
    run = tmp_path / "ddp"
    fit(
        cfg,
        tiny_cohort,
        run,
        cache_dir=tmp_path / "cache",
        use_mlflow=False,
        show_progress=False,
        devices=2,
        strategy="ddp_spawn",
    )
    state = TrainingState.read(run)
    # 2 steps x 2 patches = 4 items per epoch, shared by 2 ranks: 1 optimiser step on a global batch of 4
    assert state.status == "finished" and state.step == 1
    assert (run / "last.ckpt").exists()
