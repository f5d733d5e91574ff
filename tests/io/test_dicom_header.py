"""The strict reader (``dicom_header``, ``native_slice``) gives pydicom's values or steps aside (None).

The promise of the fast path in ``dicom_read.classic_slices``: for any file, ``read_native_slice`` returns
exactly the orientation, position, SOP Instance UID, slope, intercept, padding and stored pixels that the
pydicom path (``dicom_read._pydicom_slice``) computes, or None -- and then pydicom reads the file and
accepts or rejects it as it always did.  Checked here on real LIDC slices, on synthetic series with every
pixel encoding the loader takes, on files damaged one way at a time (each must give None, and ``load_ct``
must give the same volume or the same error with and without the fast path), on random byte damage, and
on files with nested sequences.

Files are damaged by byte surgery at offsets that pydicom's own element reader finds (``_elements``), so
the test does not lean on the walker it checks.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, RLELossless

from lungcad.errors import InputError
from lungcad.io import dicom_read, load_ct
from lungcad.io.dicom_header import ascii_text, decimals, integer_string, parse, text, uid, unsigned_short
from lungcad.io.dicom_read import _pydicom_slice
from lungcad.io.dicom_write import write_ct_series
from lungcad.io.native_slice import (
    IMAGE_ORIENTATION,
    IMAGE_POSITION,
    PIXEL_DATA,
    RESCALE_SLOPE,
    FileBuffer,
    NativeSlice,
    read_native_slice,
)
from lungcad.types import CTVolume

ROWS, COLS = 32, 32
BAD = 2  # index of the damaged slice in a 4-slice series: not the first, which pydicom always reads

# --- byte surgery, located by pydicom's element reader ------------------------------------------------

_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def _elements(data: bytes) -> dict[int, tuple[str, int, int]]:
    """tag -> (VR, element start, value end) of each defined-length top-level element (meta included).

    From ``pydicom.filereader.data_element_generator`` over everything after 'DICM' (a synthetic file is
    Explicit VR Little Endian throughout, its File Meta too).
    """
    fp = io.BytesIO(data)
    fp.seek(132)
    out = {}
    for elem in data_element_generator(fp, False, True):
        if isinstance(elem, RawDataElement):
            header = 12 if elem.VR in _LONG else 8
            out[int(elem.tag)] = (str(elem.VR), elem.value_tell - header, elem.value_tell + elem.length)
    return out


def _encode(tag: int, vr: str, value: bytes, length: int | None = None) -> bytes:
    """One Explicit VR Little Endian element; ``length`` overrides the length field (e.g. 0xFFFFFFFF)."""
    n = len(value) if length is None else length
    head = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr.encode())
    head += struct.pack("<HI", 0, n) if vr in _LONG else struct.pack("<H", n)
    return head + value


def _replace(data: bytes, tag: int, value: bytes, vr: str | None = None) -> bytes:
    """``data`` with element ``tag`` re-encoded holding ``value`` (any length, odd included)."""
    old_vr, start, end = _elements(data)[tag]
    return data[:start] + _encode(tag, vr or old_vr, value) + data[end:]


def _insert(data: bytes, element: bytes) -> bytes:
    """``data`` with ``element`` inserted before the first top-level element of a larger tag."""
    group, elem = struct.unpack_from("<HH", element)
    tag = group << 16 | elem
    start = min(s for t, (_, s, _) in _elements(data).items() if t > tag)
    return data[:start] + element + data[start:]


def _before_pixels(data: bytes, raw: bytes) -> bytes:
    """``data`` with ``raw`` bytes inserted just before the Pixel Data element."""
    start = _elements(data)[PIXEL_DATA][1]
    return data[:start] + raw + data[start:]


def _swap(data: bytes, first: int, second: int) -> bytes:
    """``data`` with the adjacent elements ``first`` < ``second`` in the other order."""
    found = _elements(data)
    (_, a, a_end), (_, b, b_end) = found[first], found[second]
    assert a_end == b
    return data[:a] + data[b:b_end] + data[a:a_end] + data[b_end:]


def _reencode(data: bytes, edit: Callable[[Dataset], None], **save: bool) -> bytes:
    """``data`` read by pydicom, edited and written again (``save``: ``save_as`` encoding options)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    edit(ds)
    out = io.BytesIO()
    ds.save_as(out, **save)
    return out.getvalue()


# --- series, reference values, end-to-end outcome ----------------------------------------------------


def _series(folder: Path, n: int = 4, seed: str = "hdr") -> list[Path]:
    """A small seeded series (``n`` x 32 x 32, int16 stored, intercept -1024) written by lungcad."""
    hu = np.random.default_rng(5).integers(-1200, 1800, size=(n, ROWS, COLS)).astype(np.float32)
    volume = CTVolume(hu, (2.0, 0.7, 0.6), (-12.5, -20.0, -30.0))
    return list(write_ct_series(volume, folder, uid_seed=seed).paths)


def _rewrite(path: Path, edit: Callable[[Dataset], None]) -> None:
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)


def _reference_iop(path: Path) -> np.ndarray:
    return _pydicom_slice(path, None)[1]


def _assert_same_as_pydicom(path: Path, iop_ref: np.ndarray, buffer: FileBuffer | None = None) -> NativeSlice:
    """The fast path takes ``path`` and every value equals the pydicom path's, exactly."""
    fast = read_native_slice(path, buffer or FileBuffer())
    assert fast is not None, f"the fast path refused {path.name}"
    stored = fast.stored.copy()  # a view of the read buffer, valid until its next read
    ds, iop, arr, slope, intercept, padding, pos = _pydicom_slice(path, iop_ref)
    assert fast.orientation.dtype == np.float64 and fast.position.dtype == np.float64
    assert fast.orientation.tobytes() == iop.tobytes()  # bit for bit: the same float() of the same text
    assert fast.position.tobytes() == pos.tobytes()
    assert fast.sop_uid == str(ds.get("SOPInstanceUID", ""))
    assert (fast.slope, fast.intercept, fast.padding) == (slope, intercept, padding)
    assert type(fast.slope) is float and type(fast.intercept) is float
    assert fast.padding is None or type(fast.padding) is float
    assert stored.dtype == arr.dtype and stored.shape == arr.shape
    np.testing.assert_array_equal(stored, arr)
    # and pydicom's own decoder, not only lungcad's native_view which shares stored_values with the fast path
    with dicom_read.quiet_pydicom():  # e.g. "excess padding" for pixel data longer than the image
        np.testing.assert_array_equal(stored, pydicom.dcmread(path).pixel_array)
    return fast


def _outcome(folder: Path) -> CTVolume | str:
    try:
        return load_ct(folder)
    except InputError as exc:
        return str(exc)


def _assert_same_load(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[CTVolume | str, dict[str, bool]]:
    """``load_ct`` with the fast path equals ``load_ct`` with pydicom alone: the volume, or the message.

    Returns the fast load's outcome and, per file name the fast path was asked about, whether it took it.
    The pydicom-only load replaces ``read_native_slice`` by "not for me", which is the other real path.
    """
    asked: dict[str, bool] = {}

    def watched(path: Path, buffer: FileBuffer) -> NativeSlice | None:
        found = read_native_slice(path, buffer)
        asked[path.name] = found is not None
        return found

    with monkeypatch.context() as m:
        m.setattr(dicom_read, "read_native_slice", watched)
        fast = _outcome(folder)
    with monkeypatch.context() as m:
        m.setattr(dicom_read, "read_native_slice", lambda path, buffer: None)
        slow = _outcome(folder)
    if isinstance(slow, str):
        assert fast == slow
    else:
        assert isinstance(fast, CTVolume), fast
        assert fast.hu.tobytes() == slow.hu.tobytes()
        assert fast.spacing_zyx_mm == slow.spacing_zyx_mm and fast.origin_xyz_mm == slow.origin_xyz_mm
        np.testing.assert_array_equal(fast.direction, slow.direction)
        assert fast.metadata == slow.metadata
    return fast, asked


# --- 1. real data -------------------------------------------------------------------------------------


def test_lidc0001_every_slice_equals_pydicom(lidc0001_dir: Path) -> None:
    files = sorted(lidc0001_dir.glob("*.dcm"))
    assert len(files) == 133
    iop_ref = _reference_iop(files[0])
    buffer = FileBuffer()  # reused across files, as classic_slices does
    paddings = {_assert_same_as_pydicom(f, iop_ref, buffer).padding for f in files}
    assert paddings == {63536.0}  # US padding beside signed pixels: kept as the unsigned value pydicom gives


def test_lidc0002_slices_equal_pydicom(real_data: Path) -> None:
    files = sorted((real_data / "lidc" / "LIDC-IDRI-0002").glob("*/*/*.dcm"))
    if not files:
        pytest.skip(f"LIDC-IDRI-0002 series not found under {real_data / 'lidc' / 'LIDC-IDRI-0002'}")
    iop_ref = _reference_iop(files[0])
    buffer = FileBuffer()
    picked = files[:: max(1, len(files) // 7)]
    assert len(picked) >= 7
    assert {_assert_same_as_pydicom(f, iop_ref, buffer).padding for f in picked} == {-2000.0}


def test_header_values_and_stop_before_pixels_match_pydicom(lidc0001_dir: Path) -> None:
    """``parse`` lists pydicom's elements; ``ascii_text`` / ``integer_string`` give its values."""
    path = lidc0001_dir / "000001.dcm"
    data = path.read_bytes()
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    header = parse(data, stop_before_pixels=True)
    assert header is not None and header.at_pixels
    assert set(header.elements) == {int(t) for t in ds.file_meta.keys()} | {int(t) for t in ds.keys()}
    pixels = _elements(data)[PIXEL_DATA][1]
    prefix = parse(data[:pixels], stop_before_pixels=True)  # a prefix ending before the pixel data
    assert prefix is not None and not prefix.at_pixels and prefix.elements == header.elements
    assert parse(data[: pixels - 3], stop_before_pixels=True) is None  # ends inside an element
    for keyword in ("Manufacturer", "ManufacturerModelName", "ConvolutionKernel"):
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert ascii_text(header, tag, "absent") == str(ds[keyword].value), keyword
    assert ascii_text(header, 0x00091001, "absent") == "absent"
    for keyword in ("InstanceNumber",):
        assert integer_string(header, pydicom.datadict.tag_for_keyword(keyword)) == int(ds[keyword].value)
    assert text(header, 0x00080060, b"CS") == ds.Modality == "CT"
    assert uid(header, 0x0020000E) == ds.SeriesInstanceUID
    assert decimals(header, 0x00280030) == [float(v) for v in ds.PixelSpacing]
    assert unsigned_short(header, 0x00280010) == ds.Rows == 512


# --- 2. synthetic series, every encoding the loader takes ---------------------------------------------


def _unsigned(ds: Dataset) -> None:
    words = np.frombuffer(ds.PixelData, "<i2").astype(np.int32) + 1024
    ds.PixelRepresentation = 0
    ds.PixelData = words.astype("<u2").tobytes()
    ds.RescaleIntercept = "-2048"


def _bits12(signed: bool) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        # random words, the 4 unused high bits included: both paths must shift them out (sign-extend)
        rng = np.random.default_rng(int(ds.InstanceNumber))
        ds.PixelData = rng.integers(0, 2**16, size=ROWS * COLS).astype("<u2").tobytes()
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)

    return edit


def _padding_us(ds: Dataset) -> None:
    ds.add_new(0x00280120, "US", 63536)  # as LIDC-IDRI-0001 writes it: -2000 read as unsigned


def _padding_ss(ds: Dataset) -> None:
    words = np.frombuffer(ds.PixelData, "<i2").copy()
    words[:40] = -2000
    ds.PixelData = words.tobytes()
    ds.add_new(0x00280120, "SS", -2000)


def _padding_us_unsigned(ds: Dataset) -> None:
    _unsigned(ds)
    words = np.frombuffer(ds.PixelData, "<u2").copy()
    words[:40] = 0
    ds.PixelData = words.tobytes()
    ds.add_new(0x00280120, "US", 0)


def _no_slope(ds: Dataset) -> None:
    del ds.RescaleSlope


def _no_rescale(ds: Dataset) -> None:
    del ds.RescaleSlope, ds.RescaleIntercept


def _slope(value: str, intercept: str = "-1024") -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        ds.RescaleSlope, ds.RescaleIntercept = value, intercept

    return edit


def _monochrome1(ds: Dataset) -> None:
    ds.PhotometricInterpretation = "MONOCHROME1"


def _one_frame(ds: Dataset) -> None:
    ds.NumberOfFrames = 1


def _extra_pixel_bytes(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData + b"\x07\x00" * 8  # ignored by both


VARIANTS = {
    "signed16": lambda ds: None,
    "unsigned16": _unsigned,
    "signed12": _bits12(True),
    "unsigned12": _bits12(False),
    "padding_us": _padding_us,
    "padding_ss": _padding_ss,
    "padding_us_unsigned": _padding_us_unsigned,
    "slope_absent": _no_slope,
    "rescale_absent": _no_rescale,
    "slope_zero": _slope("0"),
    "slope_fraction": _slope("2.5", "-1000.25"),
    "monochrome1": _monochrome1,
    "number_of_frames_1": _one_frame,
    "extra_pixel_bytes": _extra_pixel_bytes,
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_synthetic_series_equal_pydicom(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _series(tmp_path)
    for p in paths:
        _rewrite(p, VARIANTS[variant])
    iop_ref = _reference_iop(paths[0])
    for p in paths[1:]:
        fast = _assert_same_as_pydicom(p, iop_ref)
    if variant == "slope_zero":
        assert fast.slope == 1.0
    if variant == "padding_ss":
        assert fast.padding == -2000.0
    volume, asked = _assert_same_load(tmp_path, monkeypatch)
    assert isinstance(volume, CTVolume) and volume.shape == (4, ROWS, COLS)
    assert asked == {p.name: True for p in paths[1:]}  # every slice after the first went the fast way


# Values that are unusual but plainly readable: the fast path takes them, with pydicom's result.
ODD_BUT_VALID = {
    "ds_spaces_exponent_sign": (IMAGE_POSITION, b" -1.25E+01\\+20.\\-.3e1 "),
    "ds_trailing_nul": (RESCALE_SLOPE, b"1.5\x00"),
    "ds_leading_tab_nbsp": (RESCALE_SLOPE, b"\t\xa01.5 "),
    "ds_long": (IMAGE_ORIENTATION, b"1.00000000000000000001\\0\\0\\0\\1\\0"),
    "ds_tiny_slope": (RESCALE_SLOPE, b"1e-400"),  # 0.0 in float64: then 1.0 like a slope 0
    "uid_trailing_nul": (0x00080018, b"1.2.3.4\x00"),
    "photometric_nul": (0x00280004, b"MONOCHROME2\x00"),
}


@pytest.mark.parametrize("case", sorted(ODD_BUT_VALID))
def test_odd_but_valid_values_equal_pydicom(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _series(tmp_path)
    tag, value = ODD_BUT_VALID[case]
    paths[BAD].write_bytes(_replace(paths[BAD].read_bytes(), tag, value))
    _assert_same_as_pydicom(paths[BAD], _reference_iop(paths[0]))
    _, asked = _assert_same_load(tmp_path, monkeypatch)
    assert asked[paths[BAD].name]


def test_mixed_orientation_is_the_same_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _series(tmp_path)
    paths[BAD].write_bytes(_replace(paths[BAD].read_bytes(), IMAGE_ORIENTATION, b"1\\0\\0\\0\\0\\-1"))
    assert read_native_slice(paths[BAD], FileBuffer()) is not None  # a readable slice of another plane
    error, asked = _assert_same_load(tmp_path, monkeypatch)
    assert isinstance(error, str) and "different ImageOrientationPatient" in error and asked[paths[BAD].name]


# --- 3. damaged or unusual files: the fast path steps aside, load_ct is unchanged ---------------------


def _implicit(data: bytes) -> bytes:
    def edit(ds: Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian

    return _reencode(data, edit, implicit_vr=True, little_endian=True)


def _big_endian(data: bytes) -> bytes:
    """The slice re-encoded as Explicit VR Big Endian, pixels byte-swapped: pydicom reads the same image.

    ``save_as`` refuses to change the byte order; ``dcmwrite(force_encoding=True)`` re-encodes converted
    elements, so every element is converted first (``iterall``).
    """
    ds = pydicom.dcmread(io.BytesIO(data))
    for _ in ds.iterall():
        pass
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = np.frombuffer(ds.PixelData, "<i2").astype(">i2").tobytes()
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    return out.getvalue()


def _big_endian_label(data: bytes) -> bytes:
    """The File Meta says Explicit VR Big Endian (same length UID), the body stays little endian."""
    return _replace(data, 0x00020010, ExplicitVRBigEndian.encode() + b"\x00")


def _compressed(data: bytes) -> bytes:
    return _reencode(data, lambda ds: ds.compress(RLELossless))


def _set(tag: int, value: bytes, vr: str | None = None) -> Callable[[bytes], bytes]:
    return lambda data: _replace(data, tag, value, vr)


def _add(tag: int, vr: str, value: bytes) -> Callable[[bytes], bytes]:
    return lambda data: _insert(data, _encode(tag, vr, value))


def _vr(tag: int, vr: bytes) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        start = _elements(data)[tag][1]
        return data[: start + 4] + vr + data[start + 6 :]

    return mutate


def _undefined(vr: str, content: bytes) -> Callable[[bytes], bytes]:
    """A private element of undefined length holding ``content``, closed by a Sequence Delimiter."""
    delimiter = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return lambda data: _insert(data, _encode(0x00091010, vr, content, 0xFFFFFFFF) + delimiter)


_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 14) + _encode(0x00081150, "UI", b"1.2.3\x00")  # 8 + 6 bytes
_ORDERED_TAGS = (0x00080060, 0x00080070)  # Modality, Manufacturer: adjacent in a lungcad file

# name -> (mutation, whether ``parse`` still takes the file: the damage is in a value, not the structure)
MUTATIONS: dict[str, tuple[Callable[[bytes], bytes], bool]] = {
    "implicit_vr_little_endian": (_implicit, False),
    "explicit_vr_big_endian": (_big_endian, False),
    "big_endian_label_on_little_endian_body": (_big_endian_label, False),
    "rle_compressed": (_compressed, False),
    "no_preamble": (lambda data: data[132:], False),
    "no_dicm_prefix": (lambda data: data[:128] + b"DICX" + data[132:], False),
    "odd_length": (_set(0x00080070, b"lungcad"), False),  # Manufacturer of 7 bytes: pydicom reads it
    "tags_out_of_order": (lambda data: _swap(data, *_ORDERED_TAGS), False),
    "unknown_vr": (_vr(0x00081090, b"XX"), False),
    "vr_not_letters": (_vr(0x00081090, b"\x00\x00"), False),
    "undefined_length_ob": (_undefined("OB", b"\x01\x02\x03\x04"), False),
    "undefined_length_un_holding_items": (_undefined("UN", _ITEM), False),
    "item_delimiter_at_top_level": (
        lambda data: _before_pixels(data, struct.pack("<HHI", 0xFFFE, 0xE00D, 0)),
        False,
    ),
    "trailing_bytes": (lambda data: data + b"\x00\x00\x00\x00", False),
    "charset_iso2022": (_set(0x00080005, b"ISO 2022 IR 87"), False),
    "charset_garbage": (_set(0x00080005, b"NO_SUCH_SET "), False),
    "charset_multi": (_set(0x00080005, b"ISO_IR 100\\ISO_IR 192"), False),
    "slope_abc": (_set(RESCALE_SLOPE, b"abc "), True),
    "slope_nan": (_set(RESCALE_SLOPE, b"nan "), True),
    "slope_inf": (_set(RESCALE_SLOPE, b"inf "), True),
    "slope_huge": (_set(RESCALE_SLOPE, b"1e999 "), True),
    "slope_two_values": (_set(RESCALE_SLOPE, b"1\\2 "), True),
    "slope_empty": (_set(RESCALE_SLOPE, b""), True),  # pydicom: absent, 1.0
    "slope_underscore": (_set(RESCALE_SLOPE, b"1_0 "), True),  # float() reads 10: not ours to say
    "slope_as_fd": (_set(RESCALE_SLOPE, struct.pack("<d", 2.0), "FD"), True),
    "intercept_blank": (_set(0x00281052, b"  "), True),
    "position_two_values": (_set(IMAGE_POSITION, b"1.0\\2.0 "), True),
    "position_overflow": (_set(IMAGE_POSITION, b"1e999\\0\\0 "), True),  # float() gives inf
    "position_empty_part": (_set(IMAGE_POSITION, b"1\\\\2  "), True),
    "orientation_nan": (_set(IMAGE_ORIENTATION, b"1\\0\\0\\0\\nan\\0 "), True),
    "sop_uid_two_values": (_set(0x00080018, b"1.2\\3.4 "), True),
    "sop_uid_letters": (_set(0x00080018, b"1.2.abc "), True),
    "sop_uid_empty": (_set(0x00080018, b""), True),
    "number_of_frames_2": (_add(0x00280008, "IS", b"2 "), True),
    "number_of_frames_float": (_add(0x00280008, "IS", b"1.0 "), True),
    "bits_allocated_8": (_set(0x00280100, b"\x08\x00"), True),
    "bits_stored_0": (_set(0x00280101, b"\x00\x00"), True),
    "samples_per_pixel_3": (_set(0x00280002, b"\x03\x00"), True),
    "photometric_rgb": (_set(0x00280004, b"RGB "), True),
    "photometric_absent_value": (_set(0x00280004, b""), True),
    "rows_as_ss": (_vr(0x00280010, b"SS"), True),
    "rows_two_values": (_set(0x00280010, b"\x20\x00\x20\x00"), True),
    "high_bit_two_values": (_set(0x00280102, b"\x0f\x00\x0f\x00"), True),
    "padding_as_ow": (_add(0x00280120, "OW", b"\x30\xf8"), True),
    "padding_two_values": (_add(0x00280120, "SS", b"\x30\xf8\x30\xf8"), True),
    "float_pixel_data": (_add(0x7FE00008, "OF", b"\x00" * ROWS * COLS * 4), True),
    "pixel_data_short": (_set(PIXEL_DATA, b"\x00" * (ROWS * COLS * 2 - 2)), True),
    "pixel_data_as_un": (_vr(PIXEL_DATA, b"UN"), True),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_damaged_slice_steps_aside_and_load_is_unchanged(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate, structure_ok = MUTATIONS[case]
    paths = _series(tmp_path)
    data = mutate(paths[BAD].read_bytes())
    paths[BAD].write_bytes(data)
    assert (parse(data) is not None) == structure_ok
    assert read_native_slice(paths[BAD], FileBuffer()) is None
    _, asked = _assert_same_load(tmp_path, monkeypatch)
    assert not asked.get(paths[BAD].name, False)


def _cut_points(data: bytes) -> dict[str, int]:
    """Where to cut a slice: in the preamble, the File Meta, the body's header, the pixel data."""
    found = _elements(data)
    _, iop, iop_end = found[IMAGE_ORIENTATION]
    _, pixels, _ = found[PIXEL_DATA]
    return {
        "in_preamble": 100,
        "in_dicm": 131,
        "after_dicm": 132,
        "in_meta_element_header": found[0x00020010][1] + 5,
        "in_meta_value": found[0x00020010][1] + 12,
        "at_meta_end": found[0x00080005][1],  # File Meta complete, nothing after it
        "in_orientation_value": (iop + iop_end) // 2,
        "at_element_boundary_before_pixels": pixels,  # a complete header without Pixel Data
        "in_pixel_element_header": pixels + 6,
        "pixel_value_empty": pixels + 12,
        "in_pixel_data": len(data) - ROWS * COLS,
        "last_byte_missing": len(data) - 1,
        "last_word_missing": len(data) - 2,
    }


_CUTS = [  # the keys of ``_cut_points``
    "in_preamble",
    "in_dicm",
    "after_dicm",
    "in_meta_element_header",
    "in_meta_value",
    "at_meta_end",
    "in_orientation_value",
    "at_element_boundary_before_pixels",
    "in_pixel_element_header",
    "pixel_value_empty",
    "in_pixel_data",
    "last_byte_missing",
    "last_word_missing",
]


@pytest.mark.parametrize("where", _CUTS)
def test_truncated_slice_steps_aside(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _series(tmp_path)
    data = paths[BAD].read_bytes()
    cut = _cut_points(data)[where]
    paths[BAD].write_bytes(data[:cut])
    # only a cut between two elements of the body leaves a header the walker takes (then no pixel data)
    assert (parse(data[:cut]) is not None) == (where == "at_element_boundary_before_pixels")
    assert read_native_slice(paths[BAD], FileBuffer()) is None
    _assert_same_load(tmp_path, monkeypatch)  # the same volume (slice skipped) or the same error


# --- 4. random damage: whenever the fast path answers, the pydicom path gives the same ------------------

#: Characters of damaged but plausible numbers and names: what a value converter must read exactly as
#: pydicom does or refuse (e.g. "1e5", "+.5", "1_0", "nan", a NUL or a tab inside a value).
_TEXT_NOISE = b"0123456789.+-eE \\\x00\tnaif_x"
#: Short-VR elements whose values the fast path reads (their value starts 8 bytes into the element).
_READ_VALUES = (
    IMAGE_POSITION,
    IMAGE_ORIENTATION,
    RESCALE_SLOPE,
    0x00281052,  # RescaleIntercept
    0x00080018,  # SOPInstanceUID
    0x00080005,  # SpecificCharacterSet
    0x00020010,  # TransferSyntaxUID
    0x00280004,  # PhotometricInterpretation
    0x00280010,  # Rows
    0x00280100,  # BitsAllocated
    0x00280101,  # BitsStored
    0x00280103,  # PixelRepresentation
)


def _damage(pristine: bytes, rng: np.random.Generator) -> bytes:
    """One seeded damage to the header region (before the pixel values) of ``pristine``."""
    data = bytearray(pristine)
    found = _elements(pristine)
    header_end = found[PIXEL_DATA][1] + 12  # the Pixel Data element's own header included
    kind = int(rng.integers(3))
    if kind == 0:  # 1-3 bytes anywhere in the header overwritten
        for at in rng.integers(128, header_end, size=int(rng.integers(1, 4))):
            data[at] = int(rng.integers(0, 256))
    elif kind == 1:  # one bit flipped
        data[int(rng.integers(128, header_end))] ^= 1 << int(rng.integers(8))
    else:  # 1-3 characters of a value the loader reads replaced by number-like noise
        _, start, end = found[_READ_VALUES[int(rng.integers(len(_READ_VALUES)))]]
        for at in rng.integers(start + 8, end, size=int(rng.integers(1, 4))):
            data[at] = _TEXT_NOISE[int(rng.integers(len(_TEXT_NOISE)))]
    return bytes(data)


def test_random_header_damage_never_disagrees_with_pydicom(tmp_path: Path) -> None:
    """200 seeded damages (overwrites, bit flips, number-like noise in read values) of two slices, a plain
    one and one with nested sequences: whenever ``read_native_slice`` answers, the pydicom path accepts the
    file and gives the same values; files the pydicom path rejects must have been refused."""
    paths = _series(tmp_path)
    plain = paths[BAD].read_bytes()
    _rewrite(paths[BAD], lambda ds: _with_sequences(ds, outer_undefined=True, inner_undefined=False))
    pristine = (plain, paths[BAD].read_bytes())
    rng = np.random.default_rng(18)
    taken = refused = 0
    buffer = FileBuffer()
    for case in range(200):
        paths[BAD].write_bytes(_damage(pristine[case % 2], rng))
        fast = read_native_slice(paths[BAD], buffer)
        if fast is None:
            refused += 1
            continue
        taken += 1
        stored = fast.stored.copy()
        try:  # the orientation the fast path read as the series': a different one from pydicom fails here
            ds, iop, arr, slope, intercept, padding, pos = _pydicom_slice(paths[BAD], fast.orientation)
        except InputError as exc:
            pytest.fail(f"case {case}: the fast path took a file the pydicom path rejects: {exc}")
        assert fast.orientation.tobytes() == iop.tobytes() and fast.position.tobytes() == pos.tobytes(), case
        assert (fast.slope, fast.intercept, fast.padding) == (slope, intercept, padding), case
        assert fast.sop_uid == str(ds.get("SOPInstanceUID", "")), case
        assert stored.dtype == arr.dtype, case
        np.testing.assert_array_equal(stored, arr)
    # both answers are exercised: damage in values never read (names, dates) leaves files readable
    assert taken >= 40 and refused >= 40, (taken, refused)


# --- 5. sequences: undefined-length ones walked item by item, defined-length ones skipped --------------


def _code_item(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "121311", "DCM", meaning
    return item


def _length(elem: DataElement, undefined: bool) -> None:
    """Write sequence ``elem`` and its items with undefined (delimited) or explicit lengths."""
    elem.is_undefined_length = undefined
    for item in elem.value:
        item.is_undefined_length_sequence_item = undefined


def _reference(inner_undefined: bool, charset: str) -> Dataset:
    ref = Dataset()
    ref.SpecificCharacterSet = charset  # resolved by pydicom while it reads an undefined-length item
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5"
    ref.PurposeOfReferenceCodeSequence = Sequence([_code_item("Localizer"), _code_item("Other")])
    _length(ref["PurposeOfReferenceCodeSequence"], inner_undefined)
    return ref


def _with_sequences(
    ds: Dataset, *, outer_undefined: bool, inner_undefined: bool, charset: str = "ISO_IR 192"
) -> None:
    """ReferencedImageSequence (0008,1140): a reference item holding a nested code sequence, and an
    empty item; SourceImageSequence (0008,2112) with the other outer length, so both kinds are at the
    top level.  ``charset`` is the SpecificCharacterSet of the ReferencedImageSequence's item."""
    ds.ReferencedImageSequence = Sequence([_reference(inner_undefined, charset), Dataset()])
    _length(ds["ReferencedImageSequence"], outer_undefined)
    ds.SourceImageSequence = Sequence([_reference(inner_undefined, "ISO_IR 192")])
    _length(ds["SourceImageSequence"], not outer_undefined)


@pytest.mark.parametrize("inner_undefined", [True, False])
@pytest.mark.parametrize("outer_undefined", [True, False])
def test_nested_sequences_equal_pydicom(
    outer_undefined: bool, inner_undefined: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _series(tmp_path)
    _rewrite(
        paths[BAD],
        lambda ds: _with_sequences(ds, outer_undefined=outer_undefined, inner_undefined=inner_undefined),
    )
    written = pydicom.dcmread(paths[BAD])  # the file holds the lengths asked for
    assert written["ReferencedImageSequence"].is_undefined_length == outer_undefined
    assert written["SourceImageSequence"].is_undefined_length == (not outer_undefined)
    nested = written.ReferencedImageSequence[0]["PurposeOfReferenceCodeSequence"]
    assert nested.is_undefined_length == inner_undefined
    header = parse(paths[BAD].read_bytes())
    assert header is not None
    assert (header.elements[0x00081140][2] < 0) == outer_undefined  # -1: an undefined-length sequence
    _assert_same_as_pydicom(paths[BAD], _reference_iop(paths[0]))
    _, asked = _assert_same_load(tmp_path, monkeypatch)
    assert asked[paths[BAD].name]


def _nest(ds: Dataset, depth: int) -> None:
    """``depth`` ReferencedImageSequences inside one another, all of undefined length."""
    parent = ds
    for _ in range(depth):
        item = Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3"
        parent.ReferencedImageSequence = Sequence([item])
        _length(parent["ReferencedImageSequence"], True)
        parent = item


def _first(data: bytes, raw: bytes) -> int:
    at = data.find(raw, 132, _elements(data)[PIXEL_DATA][1])
    assert at > 0
    return at


_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_ITEM_START = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)

# name -> (edit of the slice's dataset, byte damage after writing it or None, whether the fast path takes it)
SEQUENCE_CASES: dict[str, tuple[Callable[[Dataset], None], Callable[[bytes], bytes] | None, bool]] = {
    # the most pydicom's reader walks here; one level more goes to pydicom
    "depth_8": (lambda ds: _nest(ds, 8), None, True),
    "depth_9": (lambda ds: _nest(ds, 9), None, False),
    # pydicom resolves an item's character set while reading an undefined-length item ...
    "unknown_charset_in_undefined_item": (
        lambda ds: _with_sequences(ds, outer_undefined=True, inner_undefined=True, charset="NO_SUCH_SET"),
        None,
        False,
    ),
    # ... but keeps a defined-length sequence as bytes, never converted for a slice after the first
    "unknown_charset_in_defined_item": (
        lambda ds: _with_sequences(ds, outer_undefined=False, inner_undefined=False, charset="NO_SUCH_SET"),
        None,
        True,
    ),
    "item_end_with_length": (  # pydicom ignores the length of an Item Delimitation
        lambda ds: _nest(ds, 1),
        lambda data: data.replace(_ITEM_END, _ITEM_END[:4] + b"\x02\x00\x00\x00", 1),
        False,
    ),
    "item_tag_wrong": (  # pydicom reads any tag where an item starts
        lambda ds: _nest(ds, 1),
        lambda data: data.replace(_ITEM_START, b"\xfe\xff\x01\xe0" + _ITEM_START[4:], 1),
        False,
    ),
    "element_in_item_past_item_end": (  # an undefined-length item that never ends: the file does
        lambda ds: _nest(ds, 1),
        lambda data: data[: _first(data, _ITEM_END)] + data[_first(data, _ITEM_END) + 16 :],
        False,
    ),
}


@pytest.mark.filterwarnings("ignore:Unknown encoding:UserWarning")  # pydicom writing NO_SUCH_SET items
@pytest.mark.parametrize("case", sorted(SEQUENCE_CASES))
def test_sequence_cases(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit, damage, taken = SEQUENCE_CASES[case]
    paths = _series(tmp_path)
    _rewrite(paths[BAD], edit)
    if damage is not None:
        paths[BAD].write_bytes(damage(paths[BAD].read_bytes()))
    if taken:
        _assert_same_as_pydicom(paths[BAD], _reference_iop(paths[0]))
    else:
        assert read_native_slice(paths[BAD], FileBuffer()) is None
    _, asked = _assert_same_load(tmp_path, monkeypatch)
    assert asked.get(paths[BAD].name, False) == taken
