"""What training tells its user: --json results, failure reasons in `runs`, no third-party chatter, and
the model file `export-model` writes (issue 9, defects 18 and 20)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.model.bundle import load_bundle
from lungcad.train.fit import fit
from lungcad.train.state import TrainingState
from tests.train.conftest import tiny_config


@pytest.fixture(scope="module")
def trained_run(tiny_cohort: Path, tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "ft-small"
    cfg = tiny_config(epochs=1, steps_per_epoch=2, hard_negatives_per_scan=0)
    fit(cfg, tiny_cohort, run, cache_dir=tiny_cache, use_mlflow=False, show_progress=False)
    return run


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.slow
def test_training_prints_no_third_party_tips_or_banners(
    tiny_cohort: Path, tiny_cache: Path, tmp_path: Path
) -> None:
    """Defect 20: Lightning's "GPU available" / litlogger tip and MLflow's database banners were printed."""
    handler = _Records()
    names = ("lightning.pytorch", "lightning.fabric", "mlflow")
    for name in names:
        logging.getLogger(name).addHandler(handler)
    levels = {name: logging.getLogger(name).level for name in names}
    cfg = tiny_config(epochs=1, steps_per_epoch=1, hard_negatives_per_scan=0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit(
                cfg,
                tiny_cohort,
                tmp_path / "r",
                cache_dir=tiny_cache,
                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                show_progress=False,
            )
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)
    text = "\n".join(handler.messages + [str(w.message) for w in caught])
    for chatter in (
        "GPU available",
        "litlogger",
        "Creating initial MLflow",
        "not found. Creating it",
        "LeafSpec",
    ):
        assert chatter not in text
    assert {name: logging.getLogger(name).level for name in names} == levels  # scoped, restored


def test_runs_shows_why_a_run_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 20: `runs` listed a failed run without its reason."""
    (tmp_path / "r1").mkdir()
    reason = "InputError: cache folder not writable"
    TrainingState(run_id="r1", status="failed", step=3, message=reason).write(tmp_path / "r1")
    assert main(["runs", str(tmp_path)]) == 0
    assert f"r1 (failed): {reason}" in capsys.readouterr().out


def test_train_control_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 20: train-control had no --json."""
    assert main(["train-control", str(tmp_path), "pause", "--reason", "night", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "pause" and doc["reason"] == "night" and Path(doc["path"]).exists()


@pytest.mark.slow
def test_export_model_defaults_to_the_runs_name_and_step(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 18: without --model-id / --model-version the file claimed to be lungcad-default 0.1.0."""
    out = tmp_path / "m.pt"
    argv = ["export-model", "--checkpoint", str(trained_run / "last.ckpt"), "--out", str(out), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["model_id"], doc["model_version"]) == ("ft-small", "0.0.0+step2")
    bundle = load_bundle(out)
    assert (bundle.model_id, bundle.model_version) == ("ft-small", "0.0.0+step2")
    assert doc["path"] == str(out) and doc["calibration"] is None and doc["warnings"] == []


@pytest.mark.slow
def test_export_model_warns_when_calibrating_on_training_scans(
    trained_run: Path, tiny_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 18: calibrating on the run's own training scans was not warned about."""
    out = tmp_path / "m.pt"
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    argv = [
        "export-model",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "--model-id",
        "t",
        "--model-version",
        "1",
    ]
    assert main([*argv, "--calibrate-on", str(tiny_cohort)]) == 0
    captured = capsys.readouterr()
    assert "calibrating on training data: 2 of 3 scans" in " ".join(captured.err.split())
    assert "calibrating on training data" in load_bundle(out).card["calibration"]["warning"]

    assert main([*argv, "--calibrate-on", str(trained_run)]) == 0  # its validation split: no warning
    assert "warning" not in capsys.readouterr().err
    assert "warning" not in load_bundle(out).card["calibration"]
