"""``lungcad synth --background``: hybrid scans from the command line; each bad background exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lungcad.cli import main
from lungcad.io.image import save_volume
from lungcad.types import CTVolume

SLAB = Path(__file__).resolve().parents[2] / "tests" / "data" / "lidc_slab_0001"


def test_background_writes_a_hybrid_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "h"
    assert (
        main(["synth", "--background", str(SLAB), "--n", "2", "--seed", "4", "--out", str(out), "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["scans"] == 2 and summary["backgrounds"] == 1 and summary["format"] == "mhd"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scans"][0]["params"]["background"] == str(SLAB)
    assert all((out / s["mhd"]).is_file() and (out / s["mask"]).is_file() for s in manifest["scans"])


def _water_mhd(path: Path) -> Path:
    """A CT-shaped volume of water: a valid image with no lung in it."""
    vol = CTVolume(np.zeros((8, 64, 64), dtype=np.float32), (2.5, 5.0, 5.0), (0.0, 0.0, 0.0), np.eye(3))
    return save_volume(vol, path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "background scan not found"),
        (lambda d: (d / "notes.txt").write_text("not a scan") and d / "notes.txt", "no CT series found"),
        (lambda d: _water_mhd(d / "water.mhd"), "no lung found in the background"),
    ],
    ids=["missing", "not-a-ct", "no-lung"],
)
def test_bad_background_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    bad = make(tmp_path)
    assert main(["synth", "--background", str(bad), "--n", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_bad_background_annotations_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "ann"
    empty.mkdir()
    args = ["synth", "--background", str(SLAB), "--background-annotations", str(empty), "--n", "1"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert "neither annotations.csv nor annotations_excluded.csv" in capsys.readouterr().err


def test_background_with_dicom_format_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["synth", "--background", str(SLAB), "--format", "dicom", "--n", "1", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "--background writes MetaImage only" in capsys.readouterr().err
