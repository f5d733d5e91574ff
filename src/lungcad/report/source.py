"""The source series' DICOM headers: patient and study facts for the report, references for SEG and SR.

``SeriesMetadata`` deliberately carries no patient name, ID or accession number (it travels into logs and
results); the report needs them, so they are read here, from the first slice's header, straight into the
report context.  Nothing in this module logs.  The SEG and SR need every source slice's header (highdicom
copies patient / study attributes and references each SOP instance), read without pixel data, in the
volume's z order (``SeriesMetadata.sop_uids``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from lungcad.errors import InputError
from lungcad.types import CTVolume


@dataclass(frozen=True)
class StudyHeader:
    """What the report's header shows (PHI: report only, never logs).  ``None``: not recorded."""

    patient_name: str | None = None  # (0010,0010)
    patient_id: str | None = None  # (0010,0020)
    patient_age: str | None = None  # (0010,1010), or from birth date and study date
    patient_sex: str | None = None  # (0010,0040)
    study_date: str | None = None  # (0008,0020) as YYYY-MM-DD
    accession: str | None = None  # (0008,0050)
    study_description: str | None = None  # (0008,1030)
    institution: str | None = None  # (0008,0080)
    scanner: str | None = None  # Manufacturer (0008,0070) + ManufacturerModelName (0008,1090)
    kernel: str | None = None  # ConvolutionKernel (0018,1210)
    slice_thickness_mm: float | None = None  # (0018,0050)
    series_description: str | None = None  # (0008,103E)


def _text(ds: Dataset | None, keyword: str) -> str | None:
    if ds is None:
        return None
    value = ds.get(keyword)
    if value is None:
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _iso_date(value: str | None) -> str | None:
    """``"20000101"`` -> ``"2000-01-01"``; anything else as given."""
    if value and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _age(age: str | None, birth: str | None, study: str | None) -> str | None:
    """DICOM age string ``"067Y"`` -> ``"67 years"``; else years between birth date and study date."""
    if age and len(age) == 4 and age[:3].isdigit():
        unit = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}.get(age[3], age[3])
        return f"{int(age[:3])} {unit}"
    if birth and study and len(birth) == 8 and len(study) == 8 and (birth + study).isdigit():
        b = date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
        s = date(int(study[:4]), int(study[4:6]), int(study[6:]))
        years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
        return f"{years} years" if years >= 0 else None
    return age or None


def study_header(volume: CTVolume, first: Dataset | None) -> StudyHeader:
    """The report header from the first source slice (``None`` for a non-DICOM scan: metadata only)."""
    meta = volume.metadata
    scanner = " ".join(
        v
        for v in (
            _text(first, "Manufacturer") or meta.manufacturer,
            _text(first, "ManufacturerModelName") or meta.manufacturer_model,
        )
        if v
    )
    thickness = meta.slice_thickness_mm
    study = _text(first, "StudyDate") or meta.study_date
    return StudyHeader(
        patient_name=_text(first, "PatientName"),
        patient_id=_text(first, "PatientID"),
        patient_age=_age(
            _text(first, "PatientAge") or meta.patient_age, _text(first, "PatientBirthDate"), study
        ),
        patient_sex={"M": "male", "F": "female", "O": "other"}.get(
            (_text(first, "PatientSex") or meta.patient_sex or "").upper(), None
        ),
        study_date=_iso_date(study),
        accession=_text(first, "AccessionNumber"),
        study_description=_text(first, "StudyDescription"),
        institution=_text(first, "InstitutionName"),
        scanner=scanner or None,
        kernel=_text(first, "ConvolutionKernel") or meta.kernel,
        slice_thickness_mm=float(thickness) if thickness else None,
        series_description=_text(first, "SeriesDescription") or meta.series_description,
    )


def _candidate_files(source: Path) -> list[Path]:
    if source.is_file():
        return [p for p in sorted(source.parent.iterdir()) if p.is_file()]
    return [p for p in sorted(source.rglob("*")) if p.is_file()]


def source_datasets(volume: CTVolume) -> list[Dataset] | None:
    """Headers (no pixel data) of the volume's source slices in z order; ``None`` for a non-DICOM scan.

    Raises:
        InputError: the series' files are no longer where the scan was read from (moved or deleted), so
            the SEG / SR could not reference them.
    """
    meta = volume.metadata
    if meta.source_format != "dicom" or not meta.sop_uids:
        return None
    source = Path(meta.source_path)
    wanted = {uid: k for k, uid in enumerate(meta.sop_uids)}
    found: list[Dataset | None] = [None] * len(wanted)
    if source.exists():
        for path in _candidate_files(source):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
                continue  # not DICOM (an XML annotation, a README) or unreadable: not one of ours
            k = wanted.get(str(ds.get("SOPInstanceUID", "")))
            if k is not None and found[k] is None:
                found[k] = ds
    missing = sum(ds is None for ds in found)
    if missing:
        raise InputError(
            f"{missing} of the {len(found)} source DICOM slices were not found",
            path=source,
            fix="keep the scan's folder in place (or pass --scan with its new location) to write the "
            "DICOM SEG and SR, which reference every source slice",
        )
    return found  # type: ignore[return-value]
