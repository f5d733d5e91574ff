"""Schemas of ``/worklist``: one row per analysed study, most urgent first."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from lungcad.contracts import LungRads, ScanStatus
from lungcad.service.db.session import as_utc
from lungcad.service.schemas import Page

if TYPE_CHECKING:
    from lungcad.service.db.models import Analysis, Study


class WorklistRow(BaseModel):
    """A study and its newest done analysis.  ``patient_name`` / ``patient_id`` are PHI: filled only for
    keys whose role may read PHI, null otherwise."""

    study_id: str
    study_uid: str
    study_date: date | None
    patient_id_hash: str | None = Field(description="HMAC of the patient id: groups a patient's studies")
    analysis_id: str
    lung_rads: LungRads | None = Field(description="the highest Lung-RADS category of the findings")
    priority_rank: int = Field(description="LungRads rank of lung_rads (higher = more urgent), -1: none")
    triage_probability: float = Field(ge=0, le=1, description="the highest actionable probability")
    n_findings: int
    scan_status: ScanStatus | None
    finished_at: datetime | None
    patient_name: str | None = None
    patient_id: str | None = None

    @classmethod
    def of(cls, analysis: Analysis, study: Study, *, phi: bool) -> WorklistRow:
        return cls(
            study_id=study.id,
            study_uid=study.study_uid,
            study_date=study.study_date,
            patient_id_hash=study.patient_id_hash,
            analysis_id=analysis.id,
            lung_rads=analysis.lung_rads,
            priority_rank=analysis.priority_rank,
            triage_probability=analysis.triage_probability,
            n_findings=analysis.n_findings,
            scan_status=analysis.scan_status,
            finished_at=as_utc(analysis.finished_at),
            patient_name=study.patient_name if phi else None,
            patient_id=study.patient_id if phi else None,
        )


class WorklistPage(Page[WorklistRow]):
    pass
