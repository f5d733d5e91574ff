"""``lungcad info`` lists a folder without CT (issue 9: 19); the QA table shows plain numbers (11)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lungcad.cli import main
from lungcad.io.dicom_write import SeriesIdentity, write_ct_series
from lungcad.io.image import save_volume
from lungcad.preprocess.qa import QACheck, Status
from lungcad.types import CTVolume
from tests.conftest import make_phantom


def _mr_folder(root: Path) -> Path:
    """Two MR series (5 and 3 slices) and a text file: nothing a CT pipeline can load."""
    for n, seed, description in ((5, "mr-t1", "T1 axial"), (3, "mr-t2", "T2 coronal")):
        hu = np.full((n, 16, 16), 100.0, dtype=np.float32)
        identity = SeriesIdentity(series_description=description)
        out = root / seed
        for p in write_ct_series(CTVolume(hu, (2.0, 0.7, 0.7)), out, uid_seed=seed, identity=identity).paths:
            ds = pydicom.dcmread(p)
            ds.Modality = "MR"
            ds.save_as(p)
    (root / "notes.txt").write_text("referral letter")
    return root


def test_info_lists_an_mr_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _mr_folder(tmp_path)
    assert main(["info", str(folder)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "T1 axial" in out and "T2 coronal" in out and "MR" in out
    assert " 5 " in out and " 3 " in out  # slice counts
    assert "no loadable CT: the folder holds 2 series (MR) and 1 non-image file(s)" in out


def test_info_json_on_an_mr_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(_mr_folder(tmp_path)), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["loadable_ct"] is False and "no loadable CT" in doc["message"]
    found = sorted((s["modality"], s["description"], s["n_slices"]) for s in doc["series_found"])
    assert found == [("MR", "T1 axial", 5), ("MR", "T2 coronal", 3)]
    assert [Path(f["path"]).name for f in doc["skipped_files"]] == ["notes.txt"]


@pytest.mark.parametrize("command", ["ingest", "detect"])
def test_ingest_and_detect_still_refuse_an_mr_only_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main([command, str(_mr_folder(tmp_path / "in"))]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no CT series found (found: MR" in err and "Traceback" not in err


def test_info_json_of_a_ct_says_it_is_loadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_ct_series(CTVolume(np.full((3, 8, 8), -800.0, dtype=np.float32), (2.0, 0.7, 0.7)), tmp_path)
    assert main(["info", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loadable_ct"] is True


def test_qa_values_are_plain_python() -> None:
    check = QACheck("x", Status.PASS, {"a": np.float64(0.976), "b": [np.int64(3), np.float32(0.5)]}, "m")
    assert check.value == {"a": 0.976, "b": [3, 0.5]}
    assert type(check.value["a"]) is float and type(check.value["b"][0]) is int
    assert "np." not in repr(check.value)


def test_ingest_qa_table_has_no_numpy_reprs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_volume(make_phantom(), tmp_path / "phantom.nii.gz")
    main(["ingest", str(path)])
    out = capsys.readouterr().out
    assert "QA verdict" in out and "lung_coverage" in out
    assert "np." not in out and "float64" not in out
