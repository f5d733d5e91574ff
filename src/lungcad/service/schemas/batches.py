"""Schemas of ``/batches``: one analysis per study, followed as one unit."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lungcad.service.db.models import AnalysisStatus
from lungcad.service.schemas import RequestModel

MAX_BATCH = 1000


class BatchCreate(RequestModel):
    """``POST /batches``: analyse the default series of every study (duplicates are analysed once)."""

    study_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    model: str | None = Field(
        None, min_length=8, max_length=64, description="a model's sha256 or unique prefix; default: active"
    )
    report: bool = False


class BatchOut(BaseModel):
    """A batch's progress: analyses per status and the mean progress (a finished analysis counts 1)."""

    id: str
    created_at: datetime
    n_analyses: int
    counts: dict[AnalysisStatus, int] = Field(description="analyses per status (every status listed)")
    progress: float = Field(ge=0, le=1)
    finished: bool = Field(description="every analysis is done, failed or cancelled")
    analysis_ids: list[str] = Field(description="in the order of the request's study_ids")
