"""Load one DICOM CT series (classic single-frame or Enhanced multi-frame) into a ``CTVolume``.

Three steps, one module each: ``dicom_read`` reads the files into slices in HU (rescale and padding per
slice, pixel-data integrity), ``slice_stack`` puts them on a regular orthogonal grid (order along the
normal, duplicates, gaps, non-uniform spacing, gantry tilt), and this module assembles the volume and its
metadata.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from lungcad.errors import InputError
from lungcad.io.dicom_read import (
    SeriesSlices,
    classic_slices,
    enhanced_slices,
    read_dataset,
    shown,
)
from lungcad.io.discover import ENHANCED_CT_SOP, SeriesInfo
from lungcad.io.native_pixels import AIR_HU, PADDING_HU_BELOW
from lungcad.io.slice_stack import POSITION_TOL_MM, regularise
from lungcad.types import CTVolume, SeriesMetadata

__all__ = ["AIR_HU", "PADDING_HU_BELOW", "POSITION_TOL_MM", "load_dicom_series"]


def age_from_dates(birth: str | None, study: str | None) -> str | None:
    """PatientAge as an Age String from PatientBirthDate (0010,0030) and StudyDate (0008,0020), both DA.

    ``("19520315", "20170314")`` -> ``"064Y"`` (the day before the 65th birthday).  Used only when the
    header has no PatientAge; the birth date itself is not kept (it identifies the patient, the age in
    whole years does not).  Malformed dates or a study before the birth -> None.
    """
    if not (birth and study and len(birth) == 8 and len(study) == 8 and (birth + study).isdigit()):
        return None
    years = int(study[:4]) - int(birth[:4]) - (study[4:] < birth[4:])
    return f"{years:03d}Y" if 0 <= years <= 999 else None


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
        patient_age=text("PatientAge") or age_from_dates(text("PatientBirthDate"), text("StudyDate")),
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


def _read_series(files: list[Path]) -> SeriesSlices:
    """Classic slices, or the frames of a single Enhanced CT / multi-frame file."""
    if len(files) == 1:
        # only what decides the reader: the chosen reader parses the file in full itself
        probe = read_dataset(files[0], ("SOPClassUID", "NumberOfFrames"))
        frames = probe.get("NumberOfFrames", 1)
        try:
            multi = int(frames or 1) > 1
        except (TypeError, ValueError):
            multi = False
        if str(probe.get("SOPClassUID", "")) == ENHANCED_CT_SOP or multi:
            return enhanced_slices(files[0])
    return classic_slices(files)


def _pixel_spacing(ds: Dataset, path: Path) -> tuple[float, float]:
    """PixelSpacing (0028,0030) as (row spacing, column spacing) mm, both finite and > 0."""
    if "PixelSpacing" not in ds:
        raise InputError("missing PixelSpacing (0028,0030)", path=path, fix="re-export the series")
    try:
        spacing = tuple(float(v) for v in ds.PixelSpacing)
    except (TypeError, ValueError):
        spacing = ()
    if len(spacing) != 2 or not all(0 < s < float("inf") for s in spacing):
        raise InputError(
            f"PixelSpacing (0028,0030) must be two positive numbers, got {shown(ds.PixelSpacing)}",
            path=path,
            fix="re-export the series",
        )
    return spacing  # type: ignore[return-value]


def load_dicom_series(info: SeriesInfo, *, gap_factor: float = 1.5, min_slices: int = 2) -> CTVolume:
    """Read, sort, rescale and regularise one series.

    Args:
        info: the series to load (from ``discover``/``choose_series``).
        gap_factor: a step larger than ``gap_factor`` x the median step is reported as a gap.
        min_slices: fewer distinct slices than this is an error (a volume needs at least 2).

    Returns:
        ``CTVolume`` on a uniform orthogonal grid; ``metadata.sop_uids`` / ``slice_report`` describe the
        original slices.

    Raises:
        InputError: an unreadable, truncated or inconsistent file (named), or too few slices.
    """
    files = sorted(info.files)
    series = _read_series(files)
    shapes = {s.pixels.shape for s in series.slices}
    if len(shapes) != 1:
        raise InputError(
            f"slices of one series have different sizes {sorted(shapes)}",
            path=files[0].parent,
            fix="pass --series for a single consistent series",
        )
    spacing_rc = _pixel_spacing(series.reference, files[0])
    stack = regularise(
        series.slices,
        series.orientation,
        spacing_rc,
        gap_factor=gap_factor,
        min_slices=min_slices,
        n_files=len(files),
        where=files[0].parent,
        volume=series.volume,
    )
    meta = dataclasses.replace(
        _metadata(series.reference, info, spacing_rc),
        sop_uids=tuple(s.sop_uid for s in stack.kept),
        slice_report=stack.report,
    )
    return CTVolume(
        hu=stack.hu,
        spacing_zyx_mm=(stack.step_mm, *spacing_rc),
        origin_xyz_mm=stack.origin_xyz_mm,
        direction=stack.direction,
        metadata=meta,
    )
