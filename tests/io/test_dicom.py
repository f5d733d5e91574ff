"""DICOM series loading: ordering, rescale, duplicates, gaps, spacing, tilt, padding, codecs, multi-frame."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, RLELossless

from lungcad.io import load_ct
from lungcad.io.dicom_write import write_ct_series
from lungcad.io.discover import choose_series, discover
from lungcad.types import CTVolume


def ramp_volume(n: int = 6, spacing_z: float = 2.0, rows: int = 8, cols: int = 10) -> CTVolume:
    """Slice k holds the constant value 100*k - 500 HU, so the order is readable from the pixels."""
    hu = np.stack([np.full((rows, cols), 100.0 * k - 500.0) for k in range(n)]).astype(np.float32)
    return CTVolume(hu, (spacing_z, 0.5, 0.6), origin_xyz_mm=(-2.5, 3.0, -40.0))


def slice_values(vol: CTVolume) -> list[float]:
    return [float(v) for v in vol.hu[:, 4, 5]]


def test_roundtrip_geometry_and_values(tmp_path: Path) -> None:
    src = ramp_volume()
    written = write_ct_series(src, tmp_path, uid_seed="t1")
    vol = load_ct(tmp_path)
    assert vol.shape == src.shape
    np.testing.assert_allclose(vol.hu, src.hu, rtol=0, atol=0)
    np.testing.assert_allclose(vol.spacing_zyx_mm, src.spacing_zyx_mm, rtol=0, atol=1e-6)
    np.testing.assert_allclose(vol.origin_xyz_mm, src.origin_xyz_mm, rtol=0, atol=1e-6)
    assert vol.metadata.series_uid == written.series_uid
    assert vol.metadata.sop_uids == written.sop_uids
    assert vol.metadata.manufacturer == "lungcad"
    assert vol.metadata.kvp == 120.0


def test_sorted_by_position_not_by_name_or_instance_number(tmp_path: Path) -> None:
    written = write_ct_series(ramp_volume(), tmp_path, uid_seed="t2")
    # Reverse the file names and scramble InstanceNumber: neither may influence the order.
    for i, p in enumerate(written.paths):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = (i * 7) % 5 + 1
        ds.save_as(tmp_path / f"x{len(written.paths) - i:03d}.dcm")
        os.remove(p)
    vol = load_ct(tmp_path)
    assert slice_values(vol) == [-500.0, -400.0, -300.0, -200.0, -100.0, 0.0]


def test_per_slice_rescale(tmp_path: Path) -> None:
    written = write_ct_series(ramp_volume(), tmp_path, uid_seed="t3")
    ds = pydicom.dcmread(written.paths[2])
    stored = ds.pixel_array.astype(np.int32)
    # Same HU written with slope 2 / intercept -2048: stored' = (HU + 2048) / 2.
    hu = stored - 1024
    ds.PixelData = ((hu + 2048) // 2).astype(np.int16).tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-2048"
    ds.save_as(written.paths[2])
    vol = load_ct(tmp_path)
    assert slice_values(vol)[2] == -300.0


def test_duplicate_positions_dropped_and_reported(tmp_path: Path) -> None:
    written = write_ct_series(ramp_volume(), tmp_path, uid_seed="t4")
    ds = pydicom.dcmread(written.paths[3])
    ds.SOPInstanceUID = ds.SOPInstanceUID[:60] + ".9"
    ds.save_as(tmp_path / "dup.dcm")
    vol = load_ct(tmp_path)
    assert vol.shape[0] == 6
    assert vol.metadata.slice_report.duplicates_dropped == 1


def test_gap_detected_and_interpolated(tmp_path: Path) -> None:
    written = write_ct_series(ramp_volume(n=8), tmp_path, uid_seed="t5")
    os.remove(written.paths[4])  # slice 4 (value -100) missing: step 4 mm once, median 2 mm
    vol = load_ct(tmp_path)
    rep = vol.metadata.slice_report
    assert rep.n_gaps == 1 and rep.nonuniform
    assert vol.shape[0] == 8 and vol.spacing_zyx_mm[0] == pytest.approx(2.0)
    # linear interpolation between -200 (slice 3) and 0 (slice 5) restores the missing -100
    assert slice_values(vol) == pytest.approx([-500, -400, -300, -200, -100, 0, 100, 200])


def test_nonuniform_spacing_resampled(tmp_path: Path) -> None:
    written = write_ct_series(ramp_volume(n=5), tmp_path, uid_seed="t6")
    # move slice 2 from z=-36 to z=-35 (between -38 and -34): steps 2, 3, 1, 2 -> median 2
    ds = pydicom.dcmread(written.paths[2])
    pos = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + 1.0]
    ds.save_as(written.paths[2])
    vol = load_ct(tmp_path, gap_factor=1.6)
    rep = vol.metadata.slice_report
    assert rep.nonuniform and rep.n_gaps == 0
    # uniform grid at -40, -38, -36, -34, -32: at -36 interpolate between -38 (-400) and -35 (-300)
    assert slice_values(vol)[2] == pytest.approx(-400 + (2 / 3) * 100, abs=1e-3)


def test_gantry_tilt_detected_and_corrected(tmp_path: Path) -> None:
    hu = np.full((5, 20, 20), -1000.0, dtype=np.float32)
    src = CTVolume(hu, (2.0, 1.0, 1.0))
    written = write_ct_series(src, tmp_path, uid_seed="t7")
    # A bright dot at the same *world* position in each slice, while each slice is shifted 0.5 mm per slice
    # in y (a 14 degree tilt): the loader must put the dot on one voxel column again.
    for k, p in enumerate(written.paths):
        ds = pydicom.dcmread(p)
        shift_mm = 1.0 * k  # 1 mm per 2 mm slice -> atan(0.5) = 26.57 deg
        ds.ImagePositionPatient = [0.0, shift_mm, 2.0 * k]
        arr = np.full((20, 20), -1000, dtype=np.int16)
        arr[10 - k, 10] = 1000  # world y = shift + row -> row = 10 - k holds world y = 10
        ds.PixelData = (arr + 1024).astype(np.int16).tobytes()
        ds.save_as(p)
    vol = load_ct(tmp_path)
    assert vol.metadata.slice_report.gantry_tilt_deg == pytest.approx(np.degrees(np.arctan(0.5)), abs=1e-6)
    peaks = [np.unravel_index(np.argmax(vol.hu[k]), (20, 20)) for k in range(5)]
    assert all(p == (10, 10) for p in peaks)


def test_padding_value_becomes_air(tmp_path: Path) -> None:
    written = write_ct_series(ramp_volume(), tmp_path, uid_seed="t8")
    ds = pydicom.dcmread(written.paths[0])
    arr = ds.pixel_array.copy()
    arr[0, :] = -2000  # stored -2000 -> -3024 HU (outside the reconstruction circle)
    ds.PixelData = arr.tobytes()
    ds.add_new(0x00280120, "SS", -2000)  # PixelPaddingValue, signed like the pixels
    ds.save_as(written.paths[0])
    vol = load_ct(tmp_path)
    assert np.all(vol.hu[0, 0, :] == -1000.0)
    assert vol.metadata.slice_report.padding_fraction == pytest.approx(10 / (6 * 80))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes(tmp_path: Path, syntax: str) -> None:
    src = ramp_volume(rows=64, cols=64)  # OpenJPEG needs room for its resolution levels
    src.hu[:, 10:20, 30:50] += np.arange(20, dtype=np.float32)  # some texture for the codecs
    write_ct_series(src, tmp_path, uid_seed="t9", transfer_syntax=syntax)
    assert pydicom.dcmread(next(tmp_path.glob("*.dcm"))).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(load_ct(tmp_path).hu, src.hu)


def test_enhanced_multiframe_ct(tmp_path: Path) -> None:
    src = ramp_volume(n=4)
    written = write_ct_series(src, tmp_path / "classic", uid_seed="t10")
    first = pydicom.dcmread(written.paths[0])
    ds = copy.deepcopy(first)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.NumberOfFrames = 4
    for key in ("ImagePositionPatient", "ImageOrientationPatient", "RescaleSlope", "RescaleIntercept"):
        del ds[key]
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = first.ImageOrientationPatient
    measures = Dataset()
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = first.SliceThickness
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = "1", "-1024", "HU"
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    pixels = []
    for p in reversed(written.paths):  # frames stored in reverse order: the loader must sort them
        d = pydicom.dcmread(p)
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = d.ImagePositionPatient
        item.PlanePositionSequence = Sequence([pos])
        frames.append(item)
        pixels.append(d.pixel_array)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack(pixels).astype(np.int16).tobytes()
    out = tmp_path / "enhanced"
    out.mkdir()
    ds.save_as(out / "enhanced.dcm")
    vol = load_ct(out)
    np.testing.assert_array_equal(vol.hu, src.hu)
    np.testing.assert_allclose(vol.origin_xyz_mm, src.origin_xyz_mm, atol=1e-6)


def test_discovery_groups_series_and_picks_most_slices(tmp_path: Path) -> None:
    a = write_ct_series(ramp_volume(n=4), tmp_path / "a", uid_seed="a")
    b = write_ct_series(ramp_volume(n=6), tmp_path / "b", uid_seed="b")
    (tmp_path / "notes.txt").write_text("not dicom")
    found = discover(tmp_path)
    assert {s.series_uid: s.n_frames for s in found.series} == {a.series_uid: 4, b.series_uid: 6}
    assert [p.name for p, _ in found.skipped] == ["notes.txt"]
    assert choose_series(found).series_uid == b.series_uid
    assert choose_series(found, a.series_uid).series_uid == a.series_uid
    assert load_ct(tmp_path, series_uid=a.series_uid).shape[0] == 4
