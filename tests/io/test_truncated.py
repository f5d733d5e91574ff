"""Short pixel data is an error naming the file and expected vs. found bytes (issue 9: 1, 12, 13).

Before: a half-truncated ``.nii.gz`` loaded as a complete scan with zeros in place of the missing slices;
a short ``.raw`` failed with MetaIO's own stderr lines and "No such file or directory"; a truncated
uncompressed DICOM slice was told to install a codec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless

from lungcad.cli import main
from lungcad.errors import InputError
from lungcad.io import load_ct
from lungcad.io.dicom_write import write_ct_series
from lungcad.io.image import quiet_itk
from lungcad.types import CTVolume

SHAPE = (20, 32, 32)  # 20 slices of 32 x 32 int16 = 40960 bytes of voxels


def _image() -> sitk.Image:
    values = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 1000 - 900).astype(np.int16)
    return sitk.GetImageFromArray(values)


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name", ["scan.nii.gz", "scan.nii"])
def test_half_truncated_nifti_is_an_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    sitk.WriteImage(_image(), str(path), useCompression=name.endswith(".gz"))
    assert load_ct(path).shape == SHAPE  # complete: loads
    _cut(path)
    expected = r"truncated: the NIfTI header describes 41312 bytes .*holds \d+"
    with pytest.raises(InputError, match=expected) as e:
        load_ct(path)
    assert name in str(e.value) and "Fix:" in str(e.value)


def test_nifti_cut_inside_the_header(tmp_path: Path) -> None:
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(_image(), str(path), useCompression=True)
    _cut(path, keep=0.01)
    with pytest.raises(InputError, match="scan.nii.gz"):
        load_ct(path)


def test_short_metaimage_raw_names_expected_and_found(tmp_path: Path) -> None:
    sitk.WriteImage(_image(), str(tmp_path / "scan.mhd"))
    _cut(tmp_path / "scan.raw")
    expected = r"describes 40960 bytes \(pixel file scan.raw\), the file holds 20480"
    with pytest.raises(InputError, match=expected):
        load_ct(tmp_path / "scan.mhd")


def test_truncated_compressed_mha(tmp_path: Path) -> None:
    path = tmp_path / "scan.mha"
    sitk.WriteImage(_image(), str(path), useCompression=True)
    _cut(path)
    with pytest.raises(InputError, match=r"MetaImage header describes \d+ bytes, the file holds \d+"):
        load_ct(path)


def test_truncated_nifti_cli_exit_2_and_only_our_message(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The CLI says it once, in one line: no ITK / MetaIO text on the stderr file descriptor before it."""
    nii = tmp_path / "scan.nii.gz"
    sitk.WriteImage(_image(), str(nii), useCompression=True)
    _cut(nii)
    assert main(["ingest", str(nii)]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error: image data is truncated") and "scan.nii.gz" in err
    assert "\n" not in err and "ITK" not in err


def test_short_raw_cli_stderr_holds_only_our_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    sitk.WriteImage(_image(), str(tmp_path / "scan.mhd"))
    _cut(tmp_path / "scan.raw")
    assert main(["info", str(tmp_path / "scan.mhd")]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error: image data is truncated") and "scan.mhd" in err
    assert "\n" not in err and "MetaImage:" not in err and "ITK ERROR" not in err
    assert "No such file or directory" not in err


def test_quiet_itk_restores_the_previous_setting() -> None:
    before = sitk.ProcessObject.GetGlobalWarningDisplay()
    with quiet_itk():
        assert sitk.ProcessObject.GetGlobalWarningDisplay() is False
    assert sitk.ProcessObject.GetGlobalWarningDisplay() == before


def _series(out: Path, shape: tuple[int, int, int] = (4, 16, 16), **kwargs: object) -> list[Path]:
    hu = np.random.default_rng(0).normal(-500, 100, shape).round().astype(np.float32)
    return list(write_ct_series(CTVolume(hu, (2.0, 0.7, 0.7)), out, uid_seed="trunc", **kwargs).paths)


def test_truncated_uncompressed_dicom_is_truncated_not_a_codec_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _series(tmp_path)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-200])  # 16 x 16 x 2 = 512 bytes of pixels, 312 left
    assert main(["ingest", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "pixel data is truncated or corrupt" in err and paths[1].name in err
    assert "need 512 bytes, the file holds 312" in err
    assert "codec" not in err and "pylibjpeg" not in err


def test_corrupt_compressed_dicom_with_a_decoder_is_corrupt_not_a_codec_problem(tmp_path: Path) -> None:
    paths = _series(tmp_path, shape=(3, 64, 64), transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(paths[1])
    fragment = bytearray(next(pydicom.encaps.generate_fragments(ds.PixelData)))
    fragment[len(fragment) // 3 :] = bytes(b ^ 0xFF for b in fragment[len(fragment) // 3 :])
    ds.PixelData = pydicom.encaps.encapsulate([bytes(fragment)])
    ds.save_as(paths[1])
    with pytest.raises(InputError, match="compressed pixel data is corrupt") as e:
        load_ct(tmp_path)
    assert paths[1].name in str(e.value) and "pylibjpeg-libjpeg" not in str(e.value)
    assert "\n" not in str(e.value)
