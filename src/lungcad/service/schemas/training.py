"""Schemas of ``/training-jobs``: the start request and a job with its live training state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from lungcad.service.db.models import TrainingJob, TrainingJobState
from lungcad.service.db.session import as_utc
from lungcad.service.schemas import RequestModel

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class StartTraining(RequestModel):
    """A training job: a configuration merged over the defaults, the cohorts, optional initial weights."""

    config: str | dict[str, Any] | None = Field(
        None,
        description="YAML text or a JSON object of configuration sections (train, model, preprocess, ...) "
        "merged over the defaults and validated (422 naming the key)",
        examples=[{"train": {"epochs": 2, "steps_per_epoch": 50}}],
    )
    data: list[str] = Field(min_length=1, max_length=50, description="cohort ids (GET /api/v1/cohorts)")
    init_from: str | None = Field(
        None, pattern=SHA256_PATTERN, description="sha256 of a registered model to fine-tune from"
    )
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps")


class TrainingProgress(BaseModel):
    """The trainer's ``status.json`` as last read (the ``TrainingState`` of ``lungcad train``)."""

    status: str = Field(description="created | running | paused | stopped | interrupted | finished | failed")
    epoch: int = Field(ge=0, description="1-based epoch being trained (0 before the first)")
    total_epochs: int = Field(ge=0)
    step: int = Field(ge=0, description="optimiser steps done")
    total_steps: int = Field(ge=0)
    losses: dict[str, float] = Field(default_factory=dict)
    lr: float = Field(description="learning rate")
    samples_per_s: float = Field(description="training throughput, samples per second")
    data_wait_fraction: float = Field(description="share of step time spent waiting for data, 0-1")
    eta_s: float | None = Field(None, description="estimated seconds to the end")
    best_cpm: float | None = Field(None, description="best validation CPM; null: not measured yet")
    last_cpm: float | None = Field(None, description="latest validation CPM; null: not measured yet")
    mlflow_run_id: str | None = None
    message: str = ""


class TrainingJobOut(BaseModel):
    id: str
    state: TrainingJobState
    command: str = Field(description="the last command asked for: run, pause or stop")
    created_at: datetime
    updated_at: datetime
    created_by: str = Field(description="prefix of the API key that started it")
    config_hash: str = Field(description="version in the configuration store (GET /api/v1/configs/{hash})")
    data: list[str] = Field(description="cohort ids")
    init_from: str | None
    max_steps: int | None
    run_dir: str = Field(description="the run folder's name under the data folder's runs/")
    attempts: int = Field(ge=0, description="processes spawned for it (a resume is one more)")
    pid: int | None
    host: str | None
    gpu: int | None
    exit_code: int | None
    message: str | None = Field(description="why it paused, stopped or failed")
    started_at: datetime | None
    finished_at: datetime | None
    progress: TrainingProgress | None = Field(description="null until the trainer reported")

    @classmethod
    def from_row(cls, row: TrainingJob) -> TrainingJobOut:
        snap = row.snapshot
        progress = TrainingProgress.model_validate(snap) if snap else None
        return cls(
            id=row.id,
            state=row.state,
            command=row.command,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
            created_by=row.created_by,
            config_hash=row.config_hash,
            data=list(row.data),
            init_from=row.init_from,
            max_steps=row.max_steps,
            run_dir=row.run_dir,
            attempts=row.attempts,
            pid=row.pid,
            host=row.host,
            gpu=row.gpu,
            exit_code=row.exit_code,
            message=row.message,
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
            progress=progress,
        )


class TrainingJobDetail(TrainingJobOut):
    config: dict[str, Any] = Field(description="the full validated configuration")

    @classmethod
    def from_row(cls, row: TrainingJob) -> TrainingJobDetail:
        return cls(**TrainingJobOut.from_row(row).model_dump(), config=row.config)
