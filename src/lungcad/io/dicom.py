"""Load one DICOM CT series (classic single-frame or Enhanced multi-frame) into a ``CTVolume``.

Rules that matter for correctness (each has a test):

* Slices are ordered by their position along the slice normal, ``ImagePositionPatient . normal`` with
  ``normal = row_cosines x column_cosines`` (0020,0032 / 0020,0037) -- never by file name or
  InstanceNumber, which scanners and anonymisers reorder freely.
* RescaleSlope / RescaleIntercept (0028,1053 / 0028,1052) are applied per slice: they may differ.
* Exact duplicate positions are dropped (and counted); a slice step larger than ``gap_factor`` x the median
  is a gap (missing slices); any other non-uniform spacing is resampled onto a uniform grid along the
  normal by linear interpolation between the two neighbouring slices.
* Gantry tilt (the slice stack is not perpendicular to the slices) is measured and corrected by shifting
  each slice in-plane so the volume lies on an orthogonal grid.
* Padding (PixelPaddingValue (0028,0120), or HU below -1500 as written by GE/Siemens outside the
  reconstruction circle: -2000, -3024) becomes air, -1000 HU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from lungcad.errors import InputError
from lungcad.io.discover import ENHANCED_CT_SOP, SeriesInfo
from lungcad.types import CTVolume, SeriesMetadata, SliceReport

AIR_HU = -1000.0
PADDING_HU_BELOW = -1500.0  # physically impossible in a reconstructed CT: only padding is this low
POSITION_TOL_MM = 1e-3


@dataclass
class _Slice:
    position: np.ndarray  # ImagePositionPatient (x, y, z) mm
    pixels: np.ndarray  # (rows, cols) float32 HU
    sop_uid: str
    source: Path
    n_padded: int = 0


def _decode_error(path: Path, ds: Dataset, exc: Exception) -> InputError:
    ts = ds.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(ds, "file_meta") else "unknown"
    name = getattr(ts, "name", str(ts))
    return InputError(
        f"cannot decode pixel data (transfer syntax {ts} '{name}'): {exc}",
        path=path,
        fix="install the codec (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle "
        "python-gdcm) or convert the series to an uncompressed transfer syntax (e.g. gdcmconv --raw)",
    )


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except (InvalidDicomError, EOFError, OSError, ValueError) as exc:
        raise InputError(
            f"not a readable DICOM file: {exc}", path=path, fix="remove the file or re-export the series"
        ) from exc


def _pixels(path: Path, ds: Dataset) -> np.ndarray:
    if "PixelData" not in ds:
        raise InputError("DICOM file has no pixel data", path=path, fix="remove it from the series folder")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for missing codecs and truncated data
        raise _decode_error(path, ds, exc) from exc
    return arr


def _rescale(
    arr: np.ndarray, slope: float, intercept: float, padding: float | None
) -> tuple[np.ndarray, int]:
    """Stored values -> HU; padding -> air.  Returns the HU slice and the number of padded pixels."""
    hu = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    pad = hu < PADDING_HU_BELOW
    if padding is not None:
        pad |= arr == padding
    hu[pad] = AIR_HU
    return hu, int(pad.sum())


def _classic_slices(files: list[Path]) -> tuple[list[_Slice], Dataset, np.ndarray]:
    slices: list[_Slice] = []
    first: Dataset | None = None
    iop_ref: np.ndarray | None = None
    for f in files:
        ds = _read(f)
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            raise InputError(
                "slice has no ImagePositionPatient/ImageOrientationPatient (0020,0032/0037)",
                path=f,
                fix="the series is not a reconstructable CT volume; export the original axial series",
            )
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        if iop_ref is None:
            iop_ref, first = iop, ds
        elif not np.allclose(iop, iop_ref, atol=1e-3):
            raise InputError(
                "slices of one series have different ImageOrientationPatient (0020,0037)",
                path=f,
                fix="the series mixes orientations (e.g. a localizer); pass --series for a single volume",
            )
        arr = _pixels(f, ds)
        if arr.ndim != 2:
            raise InputError(
                f"expected a single-frame slice, got pixel array shape {arr.shape}",
                path=f,
                fix="mixed single/multi-frame series are not supported; load the multi-frame file alone",
            )
        padding = ds.get("PixelPaddingValue")
        hu, n_pad = _rescale(
            arr,
            float(ds.get("RescaleSlope", 1.0) or 1.0),
            float(ds.get("RescaleIntercept", 0.0) or 0.0),
            None if padding is None else float(padding),
        )
        pos = np.asarray([float(v) for v in ds.ImagePositionPatient])
        slices.append(_Slice(pos, hu, str(ds.get("SOPInstanceUID", "")), f, n_pad))
    assert first is not None and iop_ref is not None  # files is non-empty (checked by the caller)
    return slices, first, iop_ref


def _enhanced_slices(path: Path) -> tuple[list[_Slice], Dataset, np.ndarray]:
    """Split an Enhanced CT (multi-frame) object into per-frame slices using its functional groups."""
    ds = _read(path)
    arr = _pixels(path, ds)
    if arr.ndim == 2:
        arr = arr[None]
    shared = ds.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != arr.shape[0]:
        raise InputError(
            "Enhanced CT without one PerFrameFunctionalGroupsSequence (5200,9230) item per frame",
            path=path,
            fix="re-export the series from the scanner or PACS",
        )

    def group(frame: Dataset, name: str) -> Dataset | None:
        for source in (frame, shared):
            seq = source.get(name)
            if seq:
                return seq[0]
        return None

    slices: list[_Slice] = []
    iop_ref: np.ndarray | None = None
    for k, frame in enumerate(per_frame):
        orient = group(frame, "PlaneOrientationSequence")
        position = group(frame, "PlanePositionSequence")
        if orient is None or position is None:
            raise InputError(
                f"frame {k + 1} lacks PlaneOrientation/PlanePosition functional groups",
                path=path,
                fix="re-export the series from the scanner or PACS",
            )
        iop = np.asarray([float(v) for v in orient.ImageOrientationPatient])
        if iop_ref is None:
            iop_ref = iop
        transform = group(frame, "PixelValueTransformationSequence")
        slope = float(transform.get("RescaleSlope", 1.0)) if transform is not None else 1.0
        intercept = float(transform.get("RescaleIntercept", 0.0)) if transform is not None else 0.0
        padding = ds.get("PixelPaddingValue")
        hu, n_pad = _rescale(arr[k], slope, intercept, None if padding is None else float(padding))
        pos = np.asarray([float(v) for v in position.ImagePositionPatient])
        slices.append(_Slice(pos, hu, f"{ds.get('SOPInstanceUID', '')}#{k + 1}", path, n_pad))
    assert iop_ref is not None
    if "PixelSpacing" not in ds:
        measures = group(per_frame[0], "PixelMeasuresSequence")
        if measures is not None:
            ds.PixelSpacing = measures.PixelSpacing
            if "SliceThickness" in measures:
                ds.SliceThickness = measures.SliceThickness
    return slices, ds, iop_ref


def _metadata(ds: Dataset, info: SeriesInfo, spacing_rc: tuple[float, float]) -> SeriesMetadata:
    def text(key: str) -> str | None:
        value = ds.get(key)
        return None if value in (None, "") else str(value)

    def number(key: str) -> float | None:
        value = ds.get(key)
        try:
            return None if value in (None, "") else float(value)
        except (TypeError, ValueError):
            return None

    kernel = ds.get("ConvolutionKernel")
    if isinstance(kernel, pydicom.multival.MultiValue):
        kernel = "\\".join(str(k) for k in kernel)
    return SeriesMetadata(
        series_uid=info.series_uid,
        study_uid=info.study_uid,
        modality=str(ds.get("Modality", "")),
        patient_age=text("PatientAge"),
        patient_sex=text("PatientSex"),
        study_date=text("StudyDate"),
        manufacturer=text("Manufacturer"),
        manufacturer_model=text("ManufacturerModelName"),
        kernel=None if kernel in (None, "") else str(kernel),
        kvp=number("KVP"),
        exposure_mas=number("Exposure"),
        slice_thickness_mm=number("SliceThickness"),
        pixel_spacing_mm=spacing_rc,
        contrast_agent=text("ContrastBolusAgent"),
        series_description=text("SeriesDescription"),
        source_format="dicom",
        source_path=str(info.files[0].parent),
    )


def _deshear(pixels: np.ndarray, offset_rc: np.ndarray) -> np.ndarray:
    """Shift one slice by ``offset_rc`` pixels (row, col) so it sits on the orthogonal grid."""
    from scipy import ndimage

    if np.all(np.abs(offset_rc) < 1e-3):
        return pixels
    return ndimage.shift(pixels, offset_rc, order=1, mode="constant", cval=AIR_HU).astype(np.float32)


def load_dicom_series(info: SeriesInfo, *, gap_factor: float = 1.5, min_slices: int = 2) -> CTVolume:
    """Read, sort, rescale and regularise one series.

    Args:
        info: the series to load (from ``discover``/``choose_series``).
        gap_factor: a step larger than ``gap_factor`` x the median step is reported as a gap.
        min_slices: fewer distinct slices than this is an error (a volume needs at least 2).

    Returns:
        ``CTVolume`` on a uniform orthogonal grid; ``metadata.sop_uids`` / ``slice_report`` describe the
        original slices.
    """
    files = sorted(info.files)
    is_enhanced = False
    if len(files) == 1:
        probe = _read(files[0])
        is_enhanced = (
            str(probe.get("SOPClassUID", "")) == ENHANCED_CT_SOP
            or int(probe.get("NumberOfFrames", 1) or 1) > 1
        )
    slices, ref, iop = _enhanced_slices(files[0]) if is_enhanced else _classic_slices(files)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    shapes = {s.pixels.shape for s in slices}
    if len(shapes) != 1:
        raise InputError(
            f"slices of one series have different sizes {sorted(shapes)}",
            path=info.files[0].parent,
            fix="pass --series for a single consistent series",
        )
    slices.sort(key=lambda s: float(s.position @ normal))
    n_read = len(slices)
    # Exact duplicates (same position): keep the first, drop the others.
    unique: list[_Slice] = []
    for s in slices:
        if unique and float((s.position - unique[-1].position) @ normal) < POSITION_TOL_MM:
            continue
        unique.append(s)
    if len(unique) < min_slices:
        raise InputError(
            f"series has {len(unique)} distinct slice position(s); a CT volume needs at least {min_slices}",
            path=info.files[0].parent,
            fix="export the whole series (a single slice or localizer cannot be analysed)",
        )
    if "PixelSpacing" not in ref:
        raise InputError("missing PixelSpacing (0028,0030)", path=info.files[0], fix="re-export the series")
    spacing_r, spacing_c = (float(v) for v in ref.PixelSpacing)
    pos0 = unique[0].position
    along = np.asarray([float((s.position - pos0) @ normal) for s in unique])
    steps = np.diff(along)
    median = float(np.median(steps))
    # Gantry tilt: the in-plane part of each slice's offset from the first.
    inplane = np.asarray([(s.position - pos0) - d * normal for s, d in zip(unique, along, strict=True)])
    tilt_deg = 0.0
    if len(unique) > 1 and along[-1] > 0:
        shear = np.linalg.norm(inplane[-1]) / along[-1]
        tilt_deg = float(np.degrees(np.arctan(shear)))
    stack = []
    for s, off in zip(unique, inplane, strict=True):
        offset_rc = np.array([off @ col_dir / spacing_r, off @ row_dir / spacing_c])
        stack.append(_deshear(s.pixels, offset_rc) if tilt_deg > 0.01 else s.pixels)
    hu = np.stack(stack)
    nonuniform = bool(np.any(np.abs(steps - median) > max(0.01 * median, POSITION_TOL_MM)))
    n_gaps = int(np.sum(steps > gap_factor * median))
    if nonuniform:
        # Resample along the normal onto a uniform grid with the median step, spanning first..last.
        n_new = int(np.floor(along[-1] / median + 1e-6)) + 1
        grid = np.arange(n_new) * median
        idx = np.clip(np.searchsorted(along, grid, side="right") - 1, 0, len(along) - 2)
        t = ((grid - along[idx]) / (along[idx + 1] - along[idx])).astype(np.float32)[:, None, None]
        hu = (1 - t) * hu[idx] + t * hu[idx + 1 if len(along) > 1 else idx]
    padding_fraction = sum(s.n_padded for s in unique) / float(len(unique) * unique[0].pixels.size)
    report = SliceReport(
        n_files=len(files),
        n_slices_read=n_read,
        duplicates_dropped=n_read - len(unique),
        positions_mm=tuple(float(a + pos0 @ normal) for a in along),
        median_step_mm=median,
        max_step_mm=float(steps.max()),
        n_gaps=n_gaps,
        nonuniform=nonuniform,
        gantry_tilt_deg=tilt_deg,
        padding_fraction=padding_fraction,
    )
    direction = np.column_stack([row_dir, col_dir, normal])
    meta = dataclasses.replace(
        _metadata(ref, info, (spacing_r, spacing_c)),
        sop_uids=tuple(s.sop_uid for s in unique),
        slice_report=report,
    )
    return CTVolume(
        hu=hu,
        spacing_zyx_mm=(median, spacing_r, spacing_c),
        origin_xyz_mm=tuple(float(v) for v in pos0),
        direction=direction,
        metadata=meta,
    )
