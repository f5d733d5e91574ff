"""``evaluate_cohort`` / ``lungcad evaluate`` on a cohort holding one corrupt scan (defect 15).

The model is the tiny training configuration with untrained weights: what is measured here is the workflow
(which scans are evaluated, what is recorded and written), not detection quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.errors import InputError
from lungcad.evaluate.cohort import evaluate_cohort
from lungcad.infer.detector import Detector
from lungcad.model.bundle import ModelBundle, save_bundle
from lungcad.model.unet import LungUNet
from tests.train.conftest import tiny_config, tiny_config_file, write_tiny_cohort

BAD_SCAN = "1.2.826.0.1.9.0"  # the first scan: --strict stops before any detection


@pytest.fixture(scope="module")
def cohort_with_a_corrupt_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tiny_cohort(tmp_path_factory.mktemp("cohort"))
    raw = root / f"{BAD_SCAN}.raw"
    raw.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])  # an interrupted copy
    return root


@pytest.fixture(scope="module")
def tiny_bundle() -> ModelBundle:
    cfg = tiny_config()
    return ModelBundle(LungUNet.from_config(cfg.model).eval(), cfg, "tiny", "0.0.0", cfg.config_hash())


@pytest.fixture(scope="module")
def tiny_model(tiny_bundle: ModelBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_bundle(tiny_bundle, tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.mark.slow
def test_a_corrupt_scan_is_recorded_and_the_cohort_goes_on(
    cohort_with_a_corrupt_scan: Path, tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    detector = Detector(tiny_bundle, bf16=False)
    report = evaluate_cohort(cohort_with_a_corrupt_scan, tmp_path / "eval", detector, bootstrap=0)
    assert [ev.record.scan_id for ev in report.scans] == ["1.2.826.0.1.9.1", "1.2.826.0.1.9.2"]
    assert [(f.scan_id, f.error) for f in report.failed] == [(BAD_SCAN, "InputError")]
    assert "image data is truncated" in report.failed[0].reason
    assert report.summary.n_scans == 2 and report.froc.counts.n_nodules == 2
    doc = json.loads(report.files["summary"].read_text())
    assert doc["n_scans"] == 2 and doc["n_failed"] == 1
    assert doc["failed_scans"][0]["scan_id"] == BAD_SCAN
    assert "truncated" in doc["failed_scans"][0]["reason"]
    assert doc["model"] == {"id": "tiny", "version": "0.0.0", "config_hash": tiny_bundle.config_hash}


def test_strict_stops_at_the_corrupt_scan(
    cohort_with_a_corrupt_scan: Path, tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=rf"image data is truncated.*{BAD_SCAN}\.mhd"):
        evaluate_cohort(
            cohort_with_a_corrupt_scan, tmp_path / "eval", Detector(tiny_bundle, bf16=False), strict=True
        )
    assert not (tmp_path / "eval" / "summary.json").exists()


def test_every_scan_failing_says_so(tiny_bundle: ModelBundle, tmp_path: Path) -> None:
    root = write_tiny_cohort(tmp_path / "cohort", n=2)
    for raw in root.glob("*.raw"):
        raw.write_bytes(b"")
    with pytest.raises(InputError, match=r"none of the 2 scans could be evaluated; the first: .*truncated"):
        evaluate_cohort(root, tmp_path / "eval", Detector(tiny_bundle, bf16=False), bootstrap=0)


@pytest.mark.slow
def test_cli_lists_the_failed_scan_and_exits_0(
    cohort_with_a_corrupt_scan: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config_file(tmp_path / "tiny.yaml")
    args = ["--config", str(config), "evaluate", "--data", str(cohort_with_a_corrupt_scan)]
    args += ["--model", str(tiny_model), "--out", str(tmp_path / "eval"), "--bootstrap", "0", "--no-bf16"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "FROC on 2 scans (2 nodules)" in out
    assert "1 scan(s) could not be evaluated" in out and BAD_SCAN in out and "truncated" in out
    doc = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert doc["n_failed"] == 1 and doc["failed_scans"][0]["scan_id"] == BAD_SCAN


def test_cli_strict_exits_2_with_the_reason(
    cohort_with_a_corrupt_scan: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config_file(tmp_path / "tiny.yaml")
    code = main(
        ["--config", str(config), "evaluate", "--data", str(cohort_with_a_corrupt_scan), "--model",
         str(tiny_model), "--out", str(tmp_path / "eval"), "--bootstrap", "0", "--no-bf16", "--strict"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "image data is truncated" in err and "Traceback" not in err
