"""Routes: ``/webhooks`` -- register a URL for events (the signing secret shown once), list, delete, the
delivery log of one webhook, and a test (``ping``) delivery (``lungcad.service.webhook_registry``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from lungcad.service import webhook_registry as lib
from lungcad.service.db.models import DeliveryStatus
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, Page, errors
from lungcad.service.schemas.webhooks import ID_PATTERN, DeliveryOut, NewWebhookOut, WebhookCreate, WebhookOut
from lungcad.service.security import Action

router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(require(Action.WEBHOOK_ADMIN))]
)

WebhookId = Annotated[str, Path(pattern=ID_PATTERN, description="the webhook's id (32 hex)")]


@router.post(
    "",
    response_model=NewWebhookOut,
    status_code=201,
    responses=errors(422),
    summary="Register a URL for events; the response carries the signing secret (shown this once)",
)
def create_webhook(body: WebhookCreate, ctx: CtxDep) -> NewWebhookOut:
    row, secret = lib.create_webhook(ctx, body.url, [e.value for e in body.events])
    return NewWebhookOut(**WebhookOut.from_row(row).model_dump(), secret=secret)


@router.get(
    "",
    response_model=Page[WebhookOut],
    responses=errors(422),
    summary="The registered webhooks, newest first (never their secrets)",
)
def list_webhooks(
    s: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0
) -> Page[WebhookOut]:
    rows, total = lib.list_webhooks(s, limit=limit, offset=offset)
    return Page[WebhookOut](
        items=[WebhookOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.delete(
    "/{webhook_id}",
    response_model=WebhookOut,
    responses=errors(404, 422),
    summary="Delete a webhook with its delivery log: nothing more is sent to it, not even pending retries",
)
def delete_webhook(webhook_id: WebhookId, ctx: CtxDep) -> WebhookOut:
    return WebhookOut.from_row(lib.delete_webhook(ctx, webhook_id))


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    responses=errors(404, 422),
    summary="The webhook's delivery log, newest first: event, payload, status, attempts, last answer",
)
def list_deliveries(
    webhook_id: WebhookId,
    s: SessionDep,
    status: Annotated[DeliveryStatus | None, Query(description="only deliveries in this status")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    offset: OffsetQuery = 0,
) -> Page[DeliveryOut]:
    rows, total = lib.list_deliveries(s, webhook_id, status=status, limit=limit, offset=offset)
    return Page[DeliveryOut](
        items=[DeliveryOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.post(
    "/{webhook_id}/test",
    response_model=DeliveryOut,
    status_code=202,
    responses=errors(404, 422),
    summary="Queue a signed 'ping' delivery to the webhook (sent by a worker within a second or so)",
)
def test_webhook(webhook_id: WebhookId, ctx: CtxDep) -> DeliveryOut:
    return DeliveryOut.from_row(lib.ping(ctx, webhook_id))
