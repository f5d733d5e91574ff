"""Schemas of ``/studies`` and the DICOMweb STOW-RS route.

Patient fields (name, id, birth date, accession number) are filled only for callers whose role may read PHI
(``Action.PHI_READ``); for every other role they are ``null``.  ``patient_id_hash`` (an HMAC under the
service secret) is always there: it groups and filters a patient's studies without naming the patient.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from lungcad.service.db.session import as_utc
from lungcad.service.schemas import Page

if TYPE_CHECKING:
    from lungcad.service.db.models import Series, Study


class SeriesOut(BaseModel):
    series_uid: str
    modality: str | None
    description: str | None
    n_instances: int
    usable: bool = Field(description="the detector can analyse it (a CT series it can load)")
    reason: str | None = Field(description="why it is not usable")

    @classmethod
    def of(cls, row: Series) -> SeriesOut:
        return cls(
            series_uid=row.series_uid,
            modality=row.modality,
            description=row.description,
            n_instances=row.n_instances,
            usable=row.usable,
            reason=row.reason,
        )


class PatientOut(BaseModel):
    """PHI: only for roles that may read it."""

    patient_id: str | None
    patient_name: str | None
    patient_birth_date: str | None = Field(description="DICOM DA, YYYYMMDD")
    accession_number: str | None


class StudyOut(BaseModel):
    id: str
    study_uid: str
    study_date: date | None
    description: str | None
    patient_id_hash: str | None
    patient: PatientOut | None = Field(None, description="null unless the caller's role may read PHI")
    n_instances: int
    total_bytes: int
    created_at: datetime
    updated_at: datetime
    series: list[SeriesOut]

    @classmethod
    def of(cls, row: Study, *, phi: bool) -> StudyOut:
        return cls(
            id=row.id,
            study_uid=row.study_uid,
            study_date=row.study_date,
            description=row.description,
            patient_id_hash=row.patient_id_hash,
            patient=PatientOut(
                patient_id=row.patient_id,
                patient_name=row.patient_name,
                patient_birth_date=row.patient_birth_date,
                accession_number=row.accession_number,
            )
            if phi
            else None,
            n_instances=row.n_instances,
            total_bytes=row.total_bytes,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
            series=[SeriesOut.of(s) for s in row.series],
        )


class SkippedOut(BaseModel):
    name: str = Field(description="where it was in the upload (display only)")
    reason: str


class StudyStored(BaseModel):
    """``POST /studies``: the stored study, what this upload added and what it set aside."""

    id: str
    study_uid: str
    created: bool = Field(description="false: the upload was merged into a study stored before")
    primary_series_uid: str = Field(description="the series an analysis uses by default")
    stored_instances: int
    duplicate_instances: int = Field(description="instances already stored (kept as they were)")
    skipped: list[SkippedOut]
    series: list[SeriesOut]


class StudyDeleted(BaseModel):
    id: str
    deleted: bool = True
    analyses: int
    files_removed: int


StudyPage = Page[StudyOut]
