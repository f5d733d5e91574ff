"""``lungcad synth`` writes a cohort and turns bad input into a one-line error with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.cli import main


def test_synth_command_writes_a_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort"
    small = tmp_path / "small.yaml"
    small.write_text("synth:\n  slice_spacing_range_mm: [5.0, 5.0]\n  vessel_points_per_tree: 200\n")
    args = ["--config", str(small), "synth", "--n", "1", "--out", str(out), "--seed", "3", "--format", "mhd"]
    args += ["--shape-xy", "96"]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scans"] == 1 and summary["format"] == "mhd"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 3 and (out / manifest["scans"][0]["mhd"]).exists()
    assert (out / "annotations.csv").exists() and (out / "annotations_excluded.csv").exists()
    # A second run into the same folder is refused, not silently overwritten.
    assert main(args) == 2
    assert "already holds a cohort" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--format", "png"], "synth.output_format='png'"), (["--shape-xy", "8"], "synth.shape_xy=8")],
)
def test_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["synth", "--n", "1", "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err
