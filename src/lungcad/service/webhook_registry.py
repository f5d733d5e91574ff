"""The webhook registry behind ``/webhooks``: register (the signing secret returned once), list, delete
(with its delivery log), the delivery log of one webhook, and a ``ping`` delivery
(``lungcad.service.webhooks`` sends them)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lungcad.log import get_logger
from lungcad.service.db.models import DeliveryStatus, Webhook, WebhookDelivery
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.errors import not_found
from lungcad.service.webhooks import EVENTS, PING, new_secret, queue_event

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

log = get_logger("lungcad.service.webhooks")


def create_webhook(ctx: ServiceContext, url: str, events: list[str]) -> tuple[Webhook, str]:
    """Register ``url`` for ``events`` (validated by the request schema); (row, secret shown once)."""
    secret = new_secret()
    row = Webhook(
        id=uuid.uuid4().hex,
        url=url,
        events=sorted(set(events), key=EVENTS.index),
        secret=secret,
        active=True,
        created_at=utcnow(),
    )
    with transaction(ctx.sessions) as s:
        s.add(row)
    log.info("webhook_created", webhook=row.id, events=row.events)
    return row, secret


def list_webhooks(s: Session, *, limit: int, offset: int) -> tuple[list[Webhook], int]:
    """One page of the webhooks, newest first, and how many there are."""
    total = s.scalar(select(func.count()).select_from(Webhook)) or 0
    rows = s.scalars(
        select(Webhook).order_by(Webhook.created_at.desc(), Webhook.id).limit(limit).offset(offset)
    )
    return list(rows.all()), total


def _find(s: Session, webhook_id: str) -> Webhook:
    row = s.get(Webhook, webhook_id)
    if row is None:
        raise not_found("webhook", webhook_id)
    return row


def delete_webhook(ctx: ServiceContext, webhook_id: str) -> Webhook:
    """Remove a webhook and its delivery log: nothing more is sent to it, not even a pending retry (a
    request in flight at that moment still arrives).  Raises ``ApiError`` 404 for an unknown id."""
    with transaction(ctx.sessions) as s:
        row = _find(s, webhook_id)
        # explicit as well as ON DELETE CASCADE: the log goes in the same transaction on every database
        s.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))
        s.delete(row)
    log.info("webhook_deleted", webhook=webhook_id)
    return row


def list_deliveries(
    s: Session, webhook_id: str, *, status: DeliveryStatus | None, limit: int, offset: int
) -> tuple[list[WebhookDelivery], int]:
    """One page of a webhook's delivery log, newest first (404 for an unknown webhook)."""
    _find(s, webhook_id)
    where = [WebhookDelivery.webhook_id == webhook_id]
    if status is not None:
        where.append(WebhookDelivery.status == status)
    total = s.scalar(select(func.count()).select_from(WebhookDelivery).where(*where)) or 0
    rows = s.scalars(
        select(WebhookDelivery)
        .where(*where)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), total


def ping(ctx: ServiceContext, webhook_id: str) -> WebhookDelivery:
    """Queue a ``ping`` delivery to one webhook (whatever its events); the new delivery row."""
    with ctx.sessions() as s:
        _find(s, webhook_id)
    ids = queue_event(ctx, PING, {"webhook_id": webhook_id}, webhook_id=webhook_id)
    with ctx.sessions() as s:
        row = s.get(WebhookDelivery, ids[0]) if ids else None
        if row is None:  # deleted meanwhile
            raise not_found("webhook", webhook_id)
    return row
