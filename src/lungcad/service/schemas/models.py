"""Schemas of ``/models``: a registered model (with its card's headline facts), the activation request and
the upload form (``multipart/form-data``, described for OpenAPI by :data:`UPLOAD_FORM`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from lungcad.service.db.models import ModelFile
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
        )


class ActivateModel(RequestModel):
    """``PUT /models/active``: which registered model new analyses use."""

    sha256: str = Field(pattern=SHA256_PATTERN, description="the model's SHA-256 (64 lower-case hex)")


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
