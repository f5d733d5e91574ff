"""Schemas of ``/analyses/{id}/deliveries``: the result delivery log of one analysis (one entry per
destination and DICOM object)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lungcad.service.db.models import ResultDelivery, ResultDeliveryStatus
from lungcad.service.db.session import as_utc


class ResultDeliveryOut(BaseModel):
    """One DICOM object of the analysis pushed to one destination, and how its attempts went."""

    id: str
    destination: str = Field(description="the destination's name in LUNGCAD_DELIVERY_DESTINATIONS")
    kind: str = Field(description="cstore | stowrs")
    object: str = Field(description="seg | sr | pdf (DICOM SEG, TID 1500 SR, Encapsulated PDF)")
    sop_instance_uid: str | None = None
    status: ResultDeliveryStatus
    attempts: int = Field(ge=0)
    max_attempts: int = Field(ge=1)
    last_status: int | None = Field(None, description="the last C-STORE status or HTTP status code")
    last_error: str | None = None
    created_at: datetime
    next_attempt_at: datetime | None = Field(None, description="when the next attempt is due (pending only)")
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None

    @classmethod
    def from_row(cls, row: ResultDelivery) -> ResultDeliveryOut:
        pending = row.status is ResultDeliveryStatus.PENDING
        return cls(
            id=row.id,
            destination=row.destination,
            kind=row.kind,
            object=row.object_kind,
            sop_instance_uid=row.sop_instance_uid,
            status=row.status,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            last_status=row.last_status,
            last_error=row.last_error,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            next_attempt_at=as_utc(row.next_attempt_at) if pending else None,
            last_attempt_at=as_utc(row.last_attempt_at),
            delivered_at=as_utc(row.delivered_at),
        )


class ResultDeliveries(BaseModel):
    """The delivery log of one analysis, by destination then object."""

    analysis_id: str
    items: list[ResultDeliveryOut]
