"""A run paused on the last step of an epoch resumes with the next epoch and ends as an uninterrupted run.

Regression: the pause checkpoint was taken mid-epoch on the epoch's last step; Lightning resumed it as a
finished epoch while the sampler skipped a whole epoch of items, so ``--resume`` trained the next epoch on
no batches and reported "finished" at the pause step (step 4 of 8).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lungcad.train.control import write_command
from lungcad.train.fit import fit
from lungcad.train.state import TrainingState
from tests.train.conftest import tiny_config
from tests.train.test_fit_resume import PauseAt, _weights

QUIET = {"use_mlflow": False, "show_progress": False}


@pytest.mark.slow
def test_pause_on_epochs_last_step_resumes_every_remaining_step(
    tiny_cohort: Path, tiny_cache: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(epochs=2, steps_per_epoch=4)
    full = fit(cfg, tiny_cohort, tmp_path / "a", cache_dir=tiny_cache, **QUIET)
    assert full.state.status == "finished" and full.state.step == 8

    run_b = tmp_path / "b"
    paused = fit(cfg, tiny_cohort, run_b, cache_dir=tiny_cache, extra_callbacks=[PauseAt(run_b, 4)], **QUIET)
    on_disk = TrainingState.read(run_b)
    assert paused.state.status == "paused" and on_disk.step == 4 and on_disk.epoch == 1
    assert torch.load(run_b / "last.ckpt", weights_only=False)["global_step"] == 4

    write_command(run_b, "run")
    resumed = fit(cfg, tiny_cohort, run_b, resume=True, cache_dir=tiny_cache, **QUIET)
    assert resumed.state.status == "finished" and resumed.state.step == 8 and resumed.state.epoch == 2

    a, b = _weights(tmp_path / "a"), _weights(run_b)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_pause_on_the_runs_last_step_finishes_the_run(
    tiny_cohort: Path, tiny_cache: Path, tmp_path: Path
) -> None:
    """Nothing is left to pause after the last step: the run finishes ("paused" would resume to nothing)."""
    run = tmp_path / "r"
    cfg = tiny_config(epochs=1, steps_per_epoch=2)
    done = fit(cfg, tiny_cohort, run, cache_dir=tiny_cache, extra_callbacks=[PauseAt(run, 2)], **QUIET)
    assert done.state.status == "finished" and TrainingState.read(run).step == 2
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 2
