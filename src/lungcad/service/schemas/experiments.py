"""Schemas of ``/experiments``: MLflow experiments and runs, and the comparison of runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from lungcad.service import experiments as lib
from lungcad.service.schemas.configs import ConfigDifference


class ExperimentOut(BaseModel):
    """An MLflow experiment (``lungcad train`` logs to the experiment ``lungcad``)."""

    id: str
    name: str
    n_runs: int = Field(ge=0, description="runs in it (any status)")
    created_at: datetime | None
    artifact_location: str

    @classmethod
    def from_lib(cls, e: lib.ExperimentSummary) -> ExperimentOut:
        return cls(
            id=e.id,
            name=e.name,
            n_runs=e.n_runs,
            created_at=e.created_at,
            artifact_location=e.artifact_location,
        )


class RunOut(BaseModel):
    """An MLflow run: its parameters (Lightning logs the configuration as ``config/<section>/<key>``), the
    latest value of each metric (``train/loss``, ``val/cpm``, ...) and its tags (MLflow's own left out)."""

    id: str
    name: str = Field(description="the run folder's name for runs of `lungcad train`")
    experiment_id: str
    status: str = Field(examples=["RUNNING", "FINISHED", "FAILED", "KILLED"])
    start_time: datetime | None
    end_time: datetime | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]

    @classmethod
    def from_lib(cls, r: lib.RunSummary) -> RunOut:
        return cls(**r.__dict__)


class MetricPoint(BaseModel):
    step: int = Field(description="optimiser step the value was logged at")
    value: float
    timestamp: datetime | None


class BestValue(BaseModel):
    """The best value of a metric over the run: the maximum of CPM / sensitivity, the minimum of losses."""

    value: float
    step: int
    goal: Literal["max", "min"]


class ArtifactOut(BaseModel):
    path: str = Field(description="relative to the run's MLflow artefact root, or to its run folder")
    size: int | None = Field(None, description="bytes")
    source: Literal["mlflow", "run_folder"]


class RunComparisonOut(BaseModel):
    run: RunOut
    curves: dict[str, list[MetricPoint]] = Field(description="metric key -> its full history, by step")
    best: dict[str, BestValue]
    config_hash: str | None = Field(description="in the configuration store (GET /api/v1/configs/{hash})")
    config_source: Literal["config_store", "run_folder", "params"] | None = Field(
        description="where the configuration was found; null: nowhere (no diff for this run)"
    )
    artifacts: list[ArtifactOut]


class ComparisonOut(BaseModel):
    """``GET /experiments/compare``: the runs in the order asked, and each later run's configuration
    difference from the first (``a``: the first run's value, ``b``: that run's)."""

    runs: list[RunComparisonOut]
    baseline: str = Field(description="run id the differences are taken against (the first one asked)")
    config_diffs: dict[str, list[ConfigDifference]] = Field(
        description="run id -> differing configuration leaves (absent: a configuration was not found)"
    )

    @classmethod
    def from_lib(cls, c: lib.Comparison) -> ComparisonOut:
        def one(r: lib.RunComparison) -> dict[str, Any]:
            return {
                "run": RunOut.from_lib(r.run),
                "curves": {k: [MetricPoint(**p.__dict__) for p in v] for k, v in r.curves.items()},
                "best": {k: BestValue(**b.__dict__) for k, b in r.best.items()},
                "config_hash": r.config_hash,
                "config_source": r.config_source,
                "artifacts": [ArtifactOut(**a.__dict__) for a in r.artifacts],
            }

        return cls(
            runs=[RunComparisonOut(**one(r)) for r in c.runs],
            baseline=c.baseline,
            config_diffs={
                k: [ConfigDifference(path=d.path, a=d.a, b=d.b) for d in v] for k, v in c.config_diffs.items()
            },
        )
