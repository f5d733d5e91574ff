"""Every bad input gives a specific error naming the file and the fix, exit code 2, and no traceback."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lungcad.cli import main
from lungcad.io.dicom_write import write_ct_series
from lungcad.types import CTVolume


def small_series(out: Path, n: int = 4, seed: str = "bad") -> list[Path]:
    hu = np.full((n, 16, 16), -800.0, dtype=np.float32)
    return list(write_ct_series(CTVolume(hu, (2.0, 0.7, 0.7)), out, uid_seed=seed).paths)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, " ".join((captured.err + captured.out).split())


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["ingest", str(tmp_path)], capsys)
    assert code == 2 and "folder is empty" in err and str(tmp_path) in err


def test_folder_without_ct(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = small_series(tmp_path)
    for p in paths:  # turn it into an MR series
        ds = pydicom.dcmread(p)
        ds.Modality = "MR"
        ds.save_as(p)
    (tmp_path / "readme.txt").write_text("hello")
    code, err = run_cli(["ingest", str(tmp_path)], capsys)
    assert code == 2 and "no CT series found (found: MR" in err and "Fix:" in err


def test_non_dicom_named_dcm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "image.dcm"
    bad.write_bytes(b"this is not a DICOM file at all" * 20)
    code, err = run_cli(["ingest", str(bad)], capsys)
    assert code == 2 and "no CT series found" in err and "1 non-image files skipped" in err


def test_truncated_dicom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = small_series(tmp_path)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) - 200])  # pixel data cut short
    code, err = run_cli(["ingest", str(tmp_path)], capsys)
    assert code == 2 and paths[1].name in err and "pixel data" in err


def test_single_slice_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small_series(tmp_path, n=1)
    code, err = run_cli(["ingest", str(tmp_path)], capsys)
    assert code == 2 and "1 distinct slice position(s)" in err and "export the whole series" in err


def test_mixed_orientations_in_one_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = small_series(tmp_path)
    ds = pydicom.dcmread(paths[2])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal localizer slipped into the series
    ds.save_as(paths[2])
    code, err = run_cli(["ingest", str(tmp_path)], capsys)
    assert code == 2 and "different ImageOrientationPatient" in err and paths[2].name in err


def test_mixed_slice_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small_series(tmp_path / "s", seed="same")
    other = CTVolume(np.full((1, 8, 8), -800.0, dtype=np.float32), (2.0, 0.7, 0.7), (0.0, 0.0, 50.0))
    written = write_ct_series(other, tmp_path / "t", uid_seed="other")
    series_uid = pydicom.dcmread(next((tmp_path / "s").glob("*.dcm"))).SeriesInstanceUID
    ds = pydicom.dcmread(written.paths[0])
    ds.SeriesInstanceUID = series_uid
    ds.save_as(written.paths[0])
    code, err = run_cli(["ingest", str(tmp_path)], capsys)
    assert code == 2 and "different sizes" in err


def test_metaimage_without_raw(real_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mhd = next((real_data / "luna16" / "header-only-example").rglob("*.mhd"))
    code, err = run_cli(["ingest", str(mhd)], capsys)
    assert code == 2 and "does not exist" in err and ".raw" in err and "Fix:" in err


def test_metaimage_without_raw_local_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), dtype=np.int16))
    sitk.WriteImage(image, str(tmp_path / "scan.mhd"))
    (tmp_path / "scan.raw").unlink()
    code, err = run_cli(["info", str(tmp_path / "scan.mhd")], capsys)
    assert code == 2 and "pixel file 'scan.raw'" in err


def _nifti_with_singular_affine(path: Path) -> None:
    """Write a valid NIfTI, then zero its sform/qform rotation so the affine is singular."""
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), dtype=np.int16))
    tmp = path.with_suffix("")  # .nii
    sitk.WriteImage(image, str(tmp))
    raw = bytearray(tmp.read_bytes())
    struct.pack_into("<h", raw, 252, 0)  # qform_code = 0
    struct.pack_into("<h", raw, 254, 1)  # sform_code = 1 (scanner)
    for offset in (280, 296, 312):  # srow_x, srow_y, srow_z all zero -> singular affine
        struct.pack_into("<4f", raw, offset, 0.0, 0.0, 0.0, 0.0)
    with gzip.open(path, "wb") as fh:
        fh.write(bytes(raw))
    tmp.unlink()


def test_nifti_bad_affine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scan.nii.gz"
    _nifti_with_singular_affine(path)
    code, err = run_cli(["ingest", str(path)], capsys)
    assert code == 2 and "scan.nii.gz" in err and ("nifti" in err.lower()) and "Fix:" in err


def test_unsupported_transfer_syntax(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = small_series(tmp_path)
    for p in paths:  # claim MPEG2 video, for which no decoder exists
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
        ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])
        ds.save_as(p, enforce_file_format=True)
    code, err = run_cli(["ingest", str(tmp_path)], capsys)
    assert code == 2 and "cannot decode pixel data" in err and "1.2.840.10008.1.2.4.100" in err
    assert "pylibjpeg" in err


def test_nonexistent_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["info", str(tmp_path / "nope")], capsys)
    assert code == 2 and "path does not exist" in err


def test_unknown_series_uid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small_series(tmp_path)
    code, err = run_cli(["ingest", str(tmp_path), "--series", "1.2.3"], capsys)
    assert code == 2 and "series 1.2.3 not found" in err


def test_bad_format_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small_series(tmp_path)
    code, err = run_cli(["ingest", str(tmp_path), "--out", str(tmp_path / "o"), "--format", "png"], capsys)
    assert code == 2 and "--format must be nifti or mhd" in err


def test_good_input_still_works_after_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small_series(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    code, _ = run_cli(["info", str(tmp_path / "b"), "--json"], capsys)
    assert code == 0
