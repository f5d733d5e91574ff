"""Schemas of ``/analyses``: the create request, the job's state, the result folder's file list.

The result itself is the public ``ScanResult`` contract (``lungcad.contracts``), served as the bytes of its
``result.json``; its schema in the OpenAPI document is the contract's own.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from lungcad.contracts import LungRads, ScanStatus
from lungcad.service.db.models import AnalysisStatus
from lungcad.service.db.session import as_utc
from lungcad.service.schemas import Page, RequestModel

if TYPE_CHECKING:
    from lungcad.service.db.models import Analysis, ModelFile


class RiskRequest(RequestModel):
    """What the scan cannot give the Brock malignancy-risk model (``lungcad.infer.risk``); null: not known
    (the model's stand-in is used and the result lists it as assumed)."""

    family_history: bool | None = Field(None, description="a first-degree relative with lung cancer")
    age_years: float | None = Field(None, ge=18, le=110, description="overrides the DICOM PatientAge")
    sex: Literal["M", "F"] | None = Field(None, description="overrides the DICOM PatientSex")
    emphysema: bool | None = Field(None, description="a visual read; overrides the %LAA-950 estimate")
    spiculation: bool | None = Field(None, description="spiculated margins (applies to every finding)")

    def options(self) -> dict[str, object]:
        """The ``lungcad.infer.risk.RiskOptions`` keyword arguments of the fields given."""
        given = self.model_dump(exclude_none=True)
        if "sex" in given:
            given["sex"] = {"M": "male", "F": "female"}[given["sex"]]
        return given


class AnalysisCreate(RequestModel):
    """``POST /analyses``: analyse one series of a stored study."""

    study_id: str = Field(min_length=1, max_length=64)
    series_uid: str | None = Field(
        None, max_length=64, description="default: the study's usable CT series with the most instances"
    )
    model: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        description="a model's sha256 or a unique prefix of it (8+ hex digits); default: the active model",
    )
    report: bool = Field(False, description="also write the clinician report, DICOM SEG / SR and figures")
    risk: RiskRequest | None = Field(
        None, description="Brock risk inputs the scan cannot give (family history, ...); default: unknown"
    )


class AnalysisCreated(BaseModel):
    """The new analysis: ``queued`` (a job was queued) or ``done`` (a cached result was reused)."""

    id: str
    status: AnalysisStatus
    cached: bool = False


class AnalysisOut(BaseModel):
    """The state of one analysis (poll it while ``status`` is queued or running)."""

    id: str
    study_id: str
    series_uid: str
    batch_id: str | None
    status: AnalysisStatus
    progress: float = Field(ge=0, le=1, description="share of the work done, 0-1")
    stage: str | None = Field(description="the last stage reported (load, preprocess, network, ...)")
    error: str | None = Field(description="why it failed or was cancelled")
    attempts: int
    report: bool
    cached: bool = Field(description="a finished analysis of the same inputs was reused; no job ran")
    model_sha256: str
    model_id: str | None
    model_version: str | None
    config_hash: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scan_status: ScanStatus | None = Field(description="the result's status (done only)")
    lung_rads: LungRads | None = Field(description="the result's priority category (done only)")
    triage_probability: float | None = Field(description="the highest actionable probability (done only)")
    n_findings: int | None = Field(description="findings in the result (done only)")

    @classmethod
    def of(cls, row: Analysis, model: ModelFile | None) -> AnalysisOut:
        done = row.status == AnalysisStatus.DONE
        return cls(
            id=row.id,
            study_id=row.study_id,
            series_uid=row.series_uid,
            batch_id=row.batch_id,
            status=row.status,
            progress=row.progress,
            stage=row.stage,
            error=row.error,
            attempts=row.attempts,
            report=row.report,
            cached=row.cached,
            model_sha256=row.model_sha256,
            model_id=model.model_id if model else None,
            model_version=model.model_version if model else None,
            config_hash=row.config_hash,
            created_at=as_utc(row.created_at),
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
            scan_status=row.scan_status if done else None,
            lung_rads=row.lung_rads if done else None,
            triage_probability=row.triage_probability if done else None,
            n_findings=row.n_findings if done else None,
        )


class AnalysisPage(Page[AnalysisOut]):
    pass


class ResultFile(BaseModel):
    """One file of a result folder; fetch it from ``GET /analyses/{id}/files/{name}``."""

    name: str = Field(description="path inside the result folder, '/'-separated (key_images/f1.png)")
    size: int = Field(ge=0, description="bytes")
    media_type: str


class ResultFiles(BaseModel):
    analysis_id: str
    files: list[ResultFile]
