"""``lungcad synth --follow-up``: writes a follow-up cohort; bad options and settings exit 2 with the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.synth.followup_manifest import load_followup_manifest

SMALL = "synth:\n  slice_spacing_range_mm: [5.0, 5.0]\n  vessel_points_per_tree: 200\n  p_no_nodule: 0.0\n"


def test_follow_up_command_writes_a_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fu"
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL)
    args = ["--config", str(cfg), "synth", "--follow-up", "--n", "1", "--out", str(out), "--seed", "5"]
    args += ["--format", "mhd", "--shape-xy", "96"]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["patients"] == 1 and summary["scans"] == 2 and summary["format"] == "mhd"
    manifest = load_followup_manifest(out)
    patient = manifest.patients[0]
    assert (out / patient.prior.image()).exists() and (out / patient.current.image()).exists()
    assert patient.prior.dicom_dir is None and manifest.config["seed"] == 5
    assert sum(summary["status"].values()) == summary["nodules"] == len(patient.nodules)
    # A second run into the same folder is refused, not silently overwritten.
    assert main(args) == 2
    assert "already holds a cohort" in capsys.readouterr().err


def test_follow_up_into_a_single_timepoint_cohort_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    args = ["synth", "--follow-up", "--n", "1", "--out", str(tmp_path), "--overwrite"]
    assert main(args) == 2
    assert "holds a single-timepoint cohort" in capsys.readouterr().err
    assert not (tmp_path / "prior").exists()


def test_follow_up_with_background_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = tmp_path / "real.mhd"
    scan.write_text("")
    args = ["synth", "--follow-up", "--background", str(scan), "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "--follow-up and --background cannot be combined" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("followup", "message"),
    [
        ("status_mix: {vanished: 1.0}", "synth.followup.status_mix has unknown keys ['vanished']"),
        ("interval_days_range: [400, 100]", "synth.followup.interval_days_range must be (low, high)"),
        ("prior_date_range: ['2020-01-01', '20210101']", "two YYYYMMDD dates, got '2020-01-01'"),
        ("min_volume_change: 1.0\n    max_volume_ratio: 1.8", "leaves no growth below max_volume_ratio"),
        ("max_shift_mm: [5.0, 5.0, 80.0]", "synth.followup.max_shift_mm must be in [0, 50] mm"),
        ("colour: red", "colour"),
    ],
)
def test_bad_follow_up_settings_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], followup: str, message: str
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(SMALL + f"  followup:\n    {followup}\n")
    args = ["--config", str(cfg), "synth", "--follow-up", "--n", "1", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "x" / "followup.json").exists()
