"""Schemas of ``/models``: a registered model (with its card's headline facts), the activation request and
the upload form (``multipart/form-data``, described for OpenAPI by :data:`UPLOAD_FORM`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from lungcad.service.db.models import ModelActivation, ModelFile
from lungcad.service.db.session import as_utc
from lungcad.service.models_registry import card_headline
from lungcad.service.schemas import RequestModel

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class ModelCardSummary(BaseModel):
    """The headline facts of the model card (null where the card has none)."""

    training_data: str | None = Field(None, description="what the model was trained on")
    training_steps: int | None = None
    training_epochs: int | None = None
    training_wall_time_s: float | None = Field(None, description="training time, seconds")
    validation_cpm: float | None = Field(None, ge=0, le=1, description="best validation CPM (LUNA16 FROC)")
    test_cohort: str | None = None
    test_cpm: float | None = Field(None, ge=0, le=1, description="CPM on the held-out test cohort")
    calibration: str | None = Field(None, description="probability calibration method, e.g. temperature")


class ModelOut(BaseModel):
    """A registered model file; ``active`` marks the one new analyses use."""

    sha256: str = Field(description="SHA-256 of the file's bytes: the model's identity")
    model_id: str
    model_version: str
    filename: str = Field(description="the name it was uploaded as (display only)")
    size: int = Field(ge=0, description="file size, bytes")
    created_at: datetime
    active: bool
    config_hash: str = Field(description="hash of the configuration the model was trained under")
    card: ModelCardSummary
    lineage: dict[str, Any] | None = Field(
        None,
        description="an exported model's origin: training job and run (MLflow run id), data (cohort ids and "
        "folders), config hash, metrics (best validation CPM); null for an uploaded file",
    )

    @classmethod
    def from_row(cls, row: ModelFile) -> ModelOut:
        return cls(
            sha256=row.sha256,
            model_id=row.model_id,
            model_version=row.model_version,
            filename=row.filename,
            size=row.size,
            created_at=as_utc(row.created_at),
            active=bool(row.active),
            config_hash=row.bundle_config_hash,
            card=ModelCardSummary(**card_headline(row.card or {})),
            lineage=row.lineage,
        )


class ActivateModel(RequestModel):
    """``PUT /models/active``: which registered model new analyses use."""

    sha256: str = Field(pattern=SHA256_PATTERN, description="the model's SHA-256 (64 lower-case hex)")


class ActivationOut(BaseModel):
    """One change of the active model (``kind``: activate, rollback, or initial -- active when the history
    began)."""

    at: datetime
    sha256: str
    by_key: str | None = Field(None, description="prefix of the API key that made it; null: the service")
    kind: Literal["initial", "activate", "rollback"]

    @classmethod
    def from_row(cls, row: ModelActivation) -> ActivationOut:
        return cls(at=as_utc(row.at), sha256=row.sha256, by_key=row.by_key, kind=row.kind)


class ExportRequest(RequestModel):
    """``POST /training-jobs/{id}/export`` (or ``POST /models/export`` for a run folder): make a model file
    of the job's best checkpoint (its last one while no CPM was measured) and register it."""

    model_id: str | None = Field(None, min_length=1, max_length=200, description="default: the run's name")
    model_version: str | None = Field(
        None, min_length=1, max_length=64, description="default 0.0.0+stepN, N the checkpoint's step"
    )
    checkpoint: Literal["best", "last"] = Field("best", description="best: by validation CPM (else last)")
    calibrate: bool = Field(True, description="fit the calibrators on the run's validation split")
    activate: bool = Field(False, description="make it the active model at once (promote)")


class RunExportRequest(ExportRequest):
    run: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="run folder name under the data folder's runs/",
    )


# The request body of ``POST /models`` for OpenAPI: the route reads the stream itself (so it can refuse a
# too-large or foreign file while it arrives), hence no pydantic body parameter to derive it from.
UPLOAD_FORM: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the .pt model file"},
                    "activate": {
                        "type": "boolean",
                        "default": False,
                        "description": "make it the active model",
                    },
                },
            }
        }
    },
}
