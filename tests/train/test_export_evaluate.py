"""Checkpoint -> model file (with calibration on the run's validation split) -> evaluate on a cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.model.bundle import load_bundle
from lungcad.train.fit import fit
from tests.train.conftest import tiny_config


@pytest.mark.slow
def test_export_calibrate_and_evaluate(
    tiny_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    cfg = tiny_config(epochs=1, steps_per_epoch=2, hard_negatives_per_scan=0)
    result = fit(cfg, tiny_cohort, run, cache_dir=tmp_path / "cache", use_mlflow=False, show_progress=False)
    model = tmp_path / "m.pt"
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"data": "tiny phantoms"}))
    code = main(
        [
            "export-model",
            "--checkpoint",
            str(result.best_checkpoint or run / "last.ckpt"),
            "--out",
            str(model),
            "--model-id",
            "tiny",
            "--calibrate-on",
            str(run),
            "--card",
            str(card),
        ]
    )
    assert code == 0
    bundle = load_bundle(model)
    assert bundle.model_id == "tiny" and bundle.card["data"] == "tiny phantoms"
    assert bundle.card["calibration"]["n_scans"] == 1  # the run's validation split
    assert bundle.config_hash == cfg.config_hash()
    capsys.readouterr()

    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--data",
            str(tiny_cohort),
            "--model",
            str(model),
            "--out",
            str(out),
            "--bootstrap",
            "20",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_scans"] == 3 and doc["model"]["id"] == "tiny"
    assert json.loads((out / "summary.json").read_text())["froc"]["counts"]["n_nodules"] == 3
    assert (out / "froc.png").exists()
