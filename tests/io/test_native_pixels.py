"""The fast intake path gives exactly what the general one gave: pixels, HU, order (issue 18)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from lungcad.io import load_ct
from lungcad.io.dicom_read import classic_slices
from lungcad.io.dicom_write import write_ct_series
from lungcad.io.native_pixels import gather_planes, native_view, rescale_into, untouched_volume
from lungcad.types import CTVolume


def _image(
    stored: np.ndarray,
    *,
    bits_stored: int = 16,
    signed: bool = True,
    syntax: str = ExplicitVRLittleEndian,
    photometric: str = "MONOCHROME2",
) -> Dataset:
    """A file-like dataset (read back through pydicom) holding ``stored`` as its raw 16-bit words."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    big = syntax == ExplicitVRBigEndian
    ds.PixelData = stored.astype((">" if big else "<") + ("i2" if signed else "u2")).tobytes()
    return ds


@pytest.mark.parametrize(
    ("bits_stored", "signed", "photometric"),
    [
        (16, True, "MONOCHROME2"),
        (16, False, "MONOCHROME2"),
        (12, True, "MONOCHROME2"),
        (12, False, "MONOCHROME1"),
    ],
)
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_native_view_equals_pydicom(bits_stored: int, signed: bool, photometric: str, syntax: str) -> None:
    rng = np.random.default_rng(bits_stored + signed)
    # every bit pattern, unused high bits included: pydicom shifts them out (sign-extends signed data)
    raw = rng.integers(-(2**15), 2**15, size=(7, 9)) if signed else rng.integers(0, 2**16, size=(7, 9))
    ds = _image(raw, bits_stored=bits_stored, signed=signed, syntax=syntax, photometric=photometric)
    fast = native_view(ds)
    assert fast is not None
    reference = ds.pixel_array
    assert fast.dtype == reference.dtype and fast.shape == reference.shape
    np.testing.assert_array_equal(fast, reference)
    if bits_stored == 12 and signed:  # the correction did something: values fit 12 signed bits
        assert fast.min() >= -2048 and fast.max() <= 2047


def test_native_view_ignores_bytes_past_the_image() -> None:
    ds = _image(np.arange(12).reshape(3, 4))
    ds.PixelData = ds.PixelData + b"\x07\x00" * 3
    np.testing.assert_array_equal(native_view(ds), np.arange(12).reshape(3, 4))


@pytest.mark.parametrize(
    "change",
    ["big_endian", "bits8", "rgb", "frames", "no_photometric", "short", "float"],
)
def test_native_view_leaves_every_other_case_to_pydicom(change: str) -> None:
    syntax = ExplicitVRBigEndian if change == "big_endian" else ExplicitVRLittleEndian
    ds = _image(np.arange(12).reshape(3, 4), syntax=syntax)
    if change == "bits8":
        ds.BitsAllocated = 8
    elif change == "rgb":
        ds.SamplesPerPixel = 3
    elif change == "frames":
        ds.NumberOfFrames = 2
    elif change == "no_photometric":
        del ds.PhotometricInterpretation
    elif change == "short":
        ds.PixelData = ds.PixelData[:-2]
    elif change == "float":
        ds.FloatPixelData = b"\x00" * 48
    assert native_view(ds) is None


def test_native_view_not_for_compressed(tmp_path: Path) -> None:
    write_ct_series(
        CTVolume(np.zeros((2, 8, 8), np.float32), (1.0, 1.0, 1.0)), tmp_path, transfer_syntax=RLELossless
    )
    ds = pydicom.dcmread(next(tmp_path.glob("*.dcm")))
    assert native_view(ds) is None


@pytest.mark.parametrize(("slope", "intercept", "padding"), [(1.0, -1024.0, None), (2.5, -1000.5, -2000.0)])
def test_rescale_into_bit_identical_to_the_per_slice_formula(
    slope: float, intercept: float, padding: float | None
) -> None:
    arr = np.random.default_rng(1).integers(-2100, 3000, size=(16, 16)).astype(np.int16)
    arr[0, :4] = -2000
    expected = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    pad = expected < -1500.0
    if padding is not None:
        pad |= arr == padding
    expected[pad] = -1000.0
    out = np.full(arr.shape, np.nan, dtype=np.float32)
    n_pad = rescale_into(arr, slope, intercept, padding, out)
    assert out.tobytes() == expected.tobytes()  # bit for bit, signed zeros included
    assert n_pad == int(pad.sum()) > 0


def test_gather_planes_is_fancy_indexing_in_place() -> None:
    rng = np.random.default_rng(2)
    for n in (1, 2, 5, 9):
        for m in range(1, n + 1):
            volume = rng.normal(size=(n, 3, 2)).astype(np.float32)
            order = [int(i) for i in rng.permutation(n)[:m]]
            expected = volume[order].copy()
            out = gather_planes(volume, order)
            np.testing.assert_array_equal(out, expected)
            assert np.shares_memory(out, volume)  # no second volume
    volume = np.arange(8, dtype=np.float32).reshape(4, 2, 1)
    np.testing.assert_array_equal(gather_planes(volume, [3, 2, 1, 0])[:, 0, 0], [6, 4, 2, 0])


def test_slices_are_planes_of_one_volume_and_sorted_in_place(tmp_path: Path) -> None:
    hu = np.stack([np.full((6, 5), 10.0 * k - 500.0) for k in range(5)]).astype(np.float32)
    written = write_ct_series(CTVolume(hu, (2.0, 1.0, 1.0)), tmp_path, uid_seed="np1")
    series = classic_slices(list(reversed(written.paths)))  # read in reverse: planes in reverse
    assert series.volume is not None and series.volume.shape == (5, 6, 5)
    assert [s.plane for s in series.slices] == [0, 1, 2, 3, 4]
    assert all(np.shares_memory(s.pixels, series.volume) for s in series.slices)
    vol = load_ct(tmp_path)
    np.testing.assert_array_equal(vol.hu, hu)


def test_duplicate_and_reversed_files_give_the_sorted_volume(tmp_path: Path) -> None:
    hu = np.stack([np.full((4, 4), 100.0 * k - 500.0) for k in range(6)]).astype(np.float32)
    written = write_ct_series(CTVolume(hu, (2.0, 1.0, 1.0)), tmp_path, uid_seed="np2")
    ds = pydicom.dcmread(written.paths[1])
    ds.SOPInstanceUID = ds.SOPInstanceUID[:60] + ".9"
    ds.save_as(tmp_path / "000000_dup.dcm")  # read first: a plane that the sorted volume must drop
    vol = load_ct(tmp_path)
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.metadata.slice_report.duplicates_dropped == 1
    # of two slices at one position the first read is kept (here the copy, whose name sorts first)
    assert vol.metadata.sop_uids == (written.sop_uids[0], ds.SOPInstanceUID, *written.sop_uids[2:])


@pytest.mark.skipif(sys.platform != "linux", reason="fork and MAP_PRIVATE: Linux")
def test_untouched_volume_is_writable_private_memory() -> None:
    volume = untouched_volume((2, 3, 4))
    assert volume.dtype == np.float32 and volume.flags.writeable and volume.flags.c_contiguous
    volume[...] = 1.0
    pid = os.fork()
    if pid == 0:  # a child's writes must not reach the parent (MAP_PRIVATE, not shared memory)
        volume[...] = 7.0
        os._exit(0)
    os.waitpid(pid, 0)
    assert np.all(volume == 1.0)
