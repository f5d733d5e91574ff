"""Schemas of ``/webhooks``: the register request, a webhook (its secret only in the create response), and
one delivery of the delivery log."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from lungcad.service.db.models import DeliveryStatus, Webhook, WebhookDelivery
from lungcad.service.db.session import as_utc
from lungcad.service.schemas import RequestModel
from lungcad.service.webhooks import EVENTS

ID_PATTERN = r"^[0-9a-f]{32}$"
MAX_URL_CHARS = 2000


class WebhookEvent(enum.StrEnum):
    """The events a webhook may ask for (``lungcad.service.webhooks.EVENTS``)."""

    ANALYSIS_DONE = "analysis.done"
    ANALYSIS_FAILED = "analysis.failed"
    TRAINING_DONE = "training.done"
    TRAINING_FAILED = "training.failed"


assert tuple(WebhookEvent) == EVENTS  # one list of events: the schema's enum is the library's


class WebhookCreate(RequestModel):
    """``POST /webhooks``."""

    url: str = Field(
        max_length=MAX_URL_CHARS,
        description="where deliveries are POSTed: an http:// or https:// URL with a host",
        examples=["https://ris.example.org/hooks/lungcad"],
    )
    events: list[WebhookEvent] = Field(
        min_length=1, max_length=len(EVENTS), description="the events to receive (duplicates are ignored)"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        try:
            parts = urlsplit(value)
            _ = parts.port  # a malformed port raises ValueError
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the URL must be http:// or https:// with a host, e.g. https://host/path")
        if parts.username or parts.password:
            raise ValueError("the URL must not carry a user name or password (the signature authenticates)")
        return value


class WebhookOut(BaseModel):
    """A registered webhook (never its secret)."""

    id: str
    url: str
    events: list[str]
    active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: Webhook) -> WebhookOut:
        return cls(
            id=row.id,
            url=row.url,
            events=list(row.events or []),
            active=bool(row.active),
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        )


class NewWebhookOut(WebhookOut):
    """The created webhook with its signing secret -- in this response only: store it now."""

    secret: str = Field(description="HMAC-SHA256 key of the X-Lungcad-Signature header (shown once)")


class DeliveryOut(BaseModel):
    """One delivery of the log: the event, its payload (ids and statuses only) and how its attempts went."""

    id: str
    webhook_id: str
    event: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int = Field(ge=0)
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="when it is tried next (null: delivered or failed)")
    last_status_code: int | None = Field(description="the HTTP status of the last attempt (null: no answer)")
    last_error: str | None
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: WebhookDelivery) -> DeliveryOut:
        pending = row.status is DeliveryStatus.PENDING
        return cls(
            id=row.id,
            webhook_id=row.webhook_id,
            event=row.event,
            payload=dict(row.payload or {}),
            status=row.status,
            attempts=row.attempts,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            next_attempt_at=as_utc(row.next_attempt_at) if pending else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            delivered_at=as_utc(row.delivered_at),
        )
