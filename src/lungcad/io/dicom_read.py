"""Read the slices of one DICOM series: datasets, decoded pixels in HU, positions.

Classic CT Image Storage (one file per slice) and Enhanced CT (one multi-frame file, geometry in the
functional groups) both become a list of ``DicomSlice``; ``slice_stack`` puts them on a regular grid.

* RescaleSlope / RescaleIntercept (0028,1053 / 0028,1052) are applied per slice: they may differ.
* Padding (PixelPaddingValue (0028,0120), or HU below -1500 as written by GE/Siemens outside the
  reconstruction circle: -2000, -3024) becomes air, -1000 HU.
* A pixel-data failure is told apart by cause: native pixel data shorter than the Image Pixel module
  describes is a truncated file (re-copy it); compressed data without an installed decoder needs the codec;
  compressed data that a present decoder rejects is corrupt.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from lungcad.errors import InputError
from lungcad.io.discover import DICOM_PARSE_ERRORS
from lungcad.io.integrity import check_native_pixel_length, is_compressed, transfer_syntax
from lungcad.io.native_pixels import SliceVolume, native_view, rescale, rescale_into
from lungcad.io.native_slice import FileBuffer, read_native_slice

CODEC_FIX = (
    "install the codec (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle "
    "python-gdcm) or convert the series to an uncompressed transfer syntax (e.g. gdcmconv --raw)"
)


@dataclass
class DicomSlice:
    """One decoded slice (or frame) and where it came from."""

    position: np.ndarray  # ImagePositionPatient (x, y, z) mm
    pixels: np.ndarray  # (rows, cols) float32 HU
    sop_uid: str
    source: Path
    n_padded: int = 0
    plane: int = -1  # index of ``pixels`` in ``SeriesSlices.volume`` (a view of it), -1: its own array


@dataclass
class SeriesSlices:
    """Every slice of a series, the dataset whose header describes the series, and its orientation.

    ``volume`` is the ``(n, rows, cols)`` float32 array whose planes the slices' ``pixels`` view (in read
    order; ``slice_stack`` sorts it in place), None when no slice was written into one.
    """

    slices: list[DicomSlice]
    reference: Dataset
    orientation: np.ndarray  # ImageOrientationPatient (0020,0037): row cosines (3), column cosines (3)
    volume: np.ndarray | None = None


# What the loader reads from every slice after the first (whose whole header feeds the metadata).
PER_SLICE_KEYWORDS = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "SOPInstanceUID",
    "RescaleSlope",
    "RescaleIntercept",
    "PixelPaddingValue",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "PlanarConfiguration",
)


def read_dataset(path: Path, keywords: tuple[str, ...] | None = None) -> Dataset:
    """``pydicom.dcmread`` with every parse failure turned into an ``InputError`` naming the file.

    pydicom converts element values lazily, at first access.  The elements the loader will read are
    converted here, so that a damaged one fails now, inside this ``try``, and not later at some unrelated
    ``ds.get``: all of them (nested sequences included) when ``keywords`` is None, else only those named.
    Converting everything costs ~2 ms a file (0.25 s of a 133-slice series, 1.1 s of a 600-slice one),
    which is why the slices after the first convert only ``PER_SLICE_KEYWORDS``.
    """
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(path)
            if keywords is None:
                for _ in ds.iterall():  # converts every element, nested sequences included
                    pass
            else:
                for keyword in keywords:
                    ds.get(keyword)
        return ds
    except DICOM_PARSE_ERRORS as exc:
        raise InputError(
            f"not a readable DICOM file: {_one_line(exc)}",
            path=path,
            fix="remove the file or re-export the series",
        ) from exc


def _decoder_available(ds: Dataset) -> bool:
    from pydicom.pixels import get_decoder

    ts = transfer_syntax(ds)
    if ts is None:
        return True
    try:
        return bool(get_decoder(ts).is_available)
    except (NotImplementedError, ValueError):  # no decoder exists for this transfer syntax at all
        return False


def _one_line(exc: Exception, limit: int = 300) -> str:
    """An exception's text on one line (pydicom lists every plugin's failure on its own line)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_pixels(path: Path, ds: Dataset) -> np.ndarray:
    """The stored pixel values of ``ds`` (rows, cols) or (frames, rows, cols).

    Raises:
        InputError: no Pixel Data (7FE0,0010); native data shorter than described (truncated: expected
            vs. found bytes); a compressed transfer syntax without a decoder (the codec advice); or data
            that the decoder rejects (corrupt).
    """
    if "PixelData" not in ds:
        raise InputError("DICOM file has no pixel data", path=path, fix="remove it from the series folder")
    check_native_pixel_length(path, ds)
    fast = native_view(ds)
    if fast is not None:
        return fast
    try:
        with quiet_pydicom():
            return ds.pixel_array
    except Exception as exc:  # pydicom and its plugins raise many types: sorted by cause below
        reason = _one_line(exc)
        ts = transfer_syntax(ds)
        name = getattr(ts, "name", str(ts))
        if not is_compressed(ds):
            raise InputError(
                f"cannot read the native pixel data (transfer syntax {ts} '{name}'): {reason}",
                path=path,
                fix="the Image Pixel module (0028,xxxx) does not match the data: re-export the series",
            ) from exc
        if not _decoder_available(ds):
            raise InputError(
                f"cannot decode pixel data (transfer syntax {ts} '{name}'): no decoder installed ({reason})",
                path=path,
                fix=CODEC_FIX,
            ) from exc
        raise InputError(
            f"compressed pixel data is corrupt (transfer syntax {ts} '{name}'; the decoder failed: {reason})",
            path=path,
            fix="the file is damaged: copy or export this slice again",
        ) from exc


def shown(value: object, limit: int = 80) -> str:
    """``repr`` of a header value for a message, cut to ``limit`` characters.

    A damaged length field can make one element swallow the next hundred: the message shows the start.
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Keep pydicom's UserWarnings about odd values off stderr while a file is read.

    A damaged file makes pydicom warn once per odd element ("Invalid value for VR UI ...") before
    lungcad's one-line error, which is the message the user can act on.  ``warnings.catch_warnings``
    changes the process-wide filters, so this wraps the reads only.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _floats(value: object, n: int, what: str, path: Path) -> np.ndarray:
    """A multi-valued DS element as ``n`` finite floats, or an ``InputError`` naming the element."""
    try:
        out = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        message = f"{what} is not a list of numbers: {shown(value)}"
        raise InputError(message, path=path, fix=_REEXPORT) from exc
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise InputError(f"{what} must be {n} finite numbers, got {shown(value)}", path=path, fix=_REEXPORT)
    return out


def _number(ds: Dataset, key: str, default: float, path: Path) -> float:
    value = ds.get(key, default)
    try:
        out = float(value if value not in (None, "") else default)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{key} is not a number: {shown(value)}", path=path, fix=_REEXPORT) from exc
    if not np.isfinite(out):
        raise InputError(f"{key} must be finite, got {shown(value)}", path=path, fix=_REEXPORT)
    return out


_REEXPORT = "the header is damaged: re-export the series from the scanner or PACS"


def _padding(ds: Dataset, path: Path) -> float | None:
    return None if ds.get("PixelPaddingValue") is None else _number(ds, "PixelPaddingValue", 0.0, path)


def _close(a: np.ndarray, b: np.ndarray, atol: float = 1e-3, rtol: float = 1e-5) -> bool:
    """``np.allclose(a, b, atol=atol)`` for a few finite floats: the same test, |a - b| <= atol + rtol * |b|
    element by element in float64, without numpy's ~0.3 ms of set-up per call (once per slice)."""
    return all(abs(x - y) <= atol + rtol * abs(y) for x, y in zip(a.tolist(), b.tolist(), strict=True))


_MIXED_ORIENTATION = (
    "slices of one series have different ImageOrientationPatient (0020,0037)",
    "the series mixes orientations (e.g. a localizer); pass --series for a single volume",
)


def _pydicom_slice(
    f: Path, iop_ref: np.ndarray | None
) -> tuple[Dataset, np.ndarray, np.ndarray, float, float, float | None, np.ndarray]:
    """(dataset, IOP, stored pixels, slope, intercept, padding, IPP) of one slice read with pydicom.

    The first slice (``iop_ref`` None) converts its whole header, the others ``PER_SLICE_KEYWORDS``.
    """
    ds = read_dataset(f, None if iop_ref is None else PER_SLICE_KEYWORDS)
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        raise InputError(
            "slice has no ImagePositionPatient/ImageOrientationPatient (0020,0032/0037)",
            path=f,
            fix="the series is not a reconstructable CT volume; export the original axial series",
        )
    iop = _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient (0020,0037)", f)
    if iop_ref is not None and not _close(iop, iop_ref):
        raise InputError(_MIXED_ORIENTATION[0], path=f, fix=_MIXED_ORIENTATION[1])
    arr = decode_pixels(f, ds)
    if arr.ndim != 2:
        raise InputError(
            f"expected a single-frame slice, got pixel array shape {arr.shape}",
            path=f,
            fix="mixed single/multi-frame series are not supported; load the multi-frame file alone",
        )
    slope = _number(ds, "RescaleSlope", 1.0, f) or 1.0
    intercept, padding = _number(ds, "RescaleIntercept", 0.0, f), _padding(ds, f)
    pos = _floats(ds.ImagePositionPatient, 3, "ImagePositionPatient (0020,0032)", f)
    return ds, iop, arr, slope, intercept, padding, pos


def classic_slices(files: list[Path]) -> SeriesSlices:
    """One slice per file (CT Image Storage); every slice must share one ImageOrientationPatient.

    The first file is read with pydicom (its header is the series' metadata); the others with
    ``native_slice`` where it takes the file, else with pydicom -- the same values either way.
    """
    slices: list[DicomSlice] = []
    first: Dataset | None = None
    iop_ref: np.ndarray | None = None
    volume = SliceVolume(len(files))
    buffer = FileBuffer()
    for f in files:
        fast = None if iop_ref is None else read_native_slice(f, buffer)
        if fast is None:
            ds, iop, arr, slope, intercept, padding, pos = _pydicom_slice(f, iop_ref)
            sop_uid = str(ds.get("SOPInstanceUID", ""))
            if iop_ref is None:
                iop_ref, first = iop, ds
        else:
            if not _close(fast.orientation, iop_ref):
                raise InputError(_MIXED_ORIENTATION[0], path=f, fix=_MIXED_ORIENTATION[1])
            arr, slope, intercept, padding = fast.stored, fast.slope, fast.intercept, fast.padding
            pos, sop_uid = fast.position, fast.sop_uid
        k = len(slices)
        hu = volume.plane(k, arr.shape)
        if hu is None:  # another size than the first slice: kept apart, reported by the loader
            hu, n_pad, k = *rescale(arr, slope, intercept, padding), -1
        else:
            n_pad = rescale_into(arr, slope, intercept, padding, hu)
        slices.append(DicomSlice(pos, hu, sop_uid, f, n_pad, k))
    if first is None or iop_ref is None:
        raise InputError("no DICOM files to read", fix="point to a folder holding a CT series")
    return SeriesSlices(slices, first, iop_ref, volume.array)


def _functional_group(frame: Dataset, shared: Dataset, name: str) -> Dataset | None:
    """A functional-group macro of one frame: its per-frame item, else the shared one."""
    for source in (frame, shared):
        seq = source.get(name)
        if seq:
            return seq[0]
    return None


def enhanced_slices(path: Path) -> SeriesSlices:
    """Split an Enhanced CT (multi-frame) object into per-frame slices using its functional groups."""
    ds = read_dataset(path)
    arr = decode_pixels(path, ds)
    if arr.ndim == 2:
        arr = arr[None]
    shared_seq = ds.get("SharedFunctionalGroupsSequence") or [Dataset()]
    shared = shared_seq[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != arr.shape[0]:
        raise InputError(
            "Enhanced CT without one PerFrameFunctionalGroupsSequence (5200,9230) item per frame",
            path=path,
            fix="re-export the series from the scanner or PACS",
        )
    slices: list[DicomSlice] = []
    iop_ref: np.ndarray | None = None
    padding = _padding(ds, path)
    volume = np.empty(arr.shape, dtype=np.float32) if arr.ndim == 3 else None
    for k, frame in enumerate(per_frame):
        orient = _functional_group(frame, shared, "PlaneOrientationSequence")
        position = _functional_group(frame, shared, "PlanePositionSequence")
        if orient is None or position is None or "ImagePositionPatient" not in position:
            raise InputError(
                f"frame {k + 1} lacks PlaneOrientation/PlanePosition functional groups",
                path=path,
                fix="re-export the series from the scanner or PACS",
            )
        iop = _floats(orient.get("ImageOrientationPatient"), 6, "ImageOrientationPatient (0020,0037)", path)
        if iop_ref is None:
            iop_ref = iop
        transform = _functional_group(frame, shared, "PixelValueTransformationSequence") or Dataset()
        slope = _number(transform, "RescaleSlope", 1.0, path)
        intercept = _number(transform, "RescaleIntercept", 0.0, path)
        if volume is None:
            hu, n_pad = rescale(arr[k], slope, intercept, padding)
        else:
            hu, n_pad = volume[k], rescale_into(arr[k], slope, intercept, padding, volume[k])
        pos = _floats(position.ImagePositionPatient, 3, "ImagePositionPatient (0020,0032)", path)
        uid = f"{ds.get('SOPInstanceUID', '')}#{k + 1}"
        slices.append(DicomSlice(pos, hu, uid, path, n_pad, -1 if volume is None else k))
    if iop_ref is None:
        raise InputError("Enhanced CT without frames", path=path, fix="re-export the series")
    if "PixelSpacing" not in ds:
        measures = _functional_group(per_frame[0], shared, "PixelMeasuresSequence")
        if measures is not None and "PixelSpacing" in measures:
            ds.PixelSpacing = measures.PixelSpacing
            if "SliceThickness" in measures:
                ds.SliceThickness = measures.SliceThickness
    return SeriesSlices(slices, ds, iop_ref, volume)
