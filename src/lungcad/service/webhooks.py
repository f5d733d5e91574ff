"""Webhooks: signed event notifications (analysis done / failed, training done / failed) sent to registered
URLs, retried with backoff, every attempt recorded in the delivery log (``webhook_deliveries``).

* **Emit.** :func:`emit` writes one ``pending`` delivery row per active webhook that wants the event, right
  after the state change committed (``jobs.state.finish_done`` / ``finish_failed``, the reaper, a cached
  analysis at creation, the training manager).  It never raises into the caller: a job must not fail
  because a notification could not be queued (it logs ``webhook_emit_failed`` instead).
* **Deliver.** :func:`deliver_due` (a thread of every worker, each second; or called directly) claims due
  rows with a conditional UPDATE (a fresh token and ``next_attempt_at`` pushed ``CLAIM_LEASE_S`` ahead), so
  two senders never send one attempt twice; a sender that dies mid-request leaves the row to be claimed
  again after the lease (delivery is at-least-once: receivers de-duplicate by ``X-Lungcad-Delivery``).
* **Sign.** Body: the JSON bytes of ``{"delivery_id", "event", "created_at", "data"}``.  Headers:
  ``X-Lungcad-Event``, ``X-Lungcad-Delivery``, ``X-Lungcad-Timestamp`` (unix seconds of this attempt) and
  ``X-Lungcad-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>``; receivers check it
  with :func:`verify_signature` (docs/service.md has a worked example).
* **Retry.** A 2xx is delivered; anything else (another status, a timeout, a refused connection) adds one
  to ``attempts`` and waits ``BACKOFF_BASE_S * 2**(attempts-1)`` seconds (capped at ``BACKOFF_CAP_S``);
  after ``MAX_ATTEMPTS`` the row is ``failed``.

Payloads hold ids and statuses only (analysis / study / training job id, status, Lung-RADS, number of
findings), never patient data; log lines hold delivery and webhook ids, never a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import and_, select, update

from lungcad.log import get_logger
from lungcad.service.db.claims import claim_due, start_rounds
from lungcad.service.db.models import (
    Analysis,
    AnalysisStatus,
    DeliveryStatus,
    TrainingJobState,
    Webhook,
    WebhookDelivery,
)
from lungcad.service.db.session import as_utc, transaction, utcnow

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

EVENTS = ("analysis.done", "analysis.failed", "training.done", "training.failed")
PING = "ping"  # POST /webhooks/{id}/test: sent whatever the webhook's events
MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 300.0
CLAIM_LEASE_S = 60.0  # longer than a request can take (TIMEOUT_S): a live sender never loses its claim
TIMEOUT_S = 10.0
BATCH = 50  # deliveries claimed per round
TOLERANCE_S = 300
_ERROR_CHARS = 500
_ANALYSIS_EVENTS = {AnalysisStatus.DONE: "analysis.done", AnalysisStatus.FAILED: "analysis.failed"}
_TRAINING_EVENTS = {TrainingJobState.FINISHED: "training.done", TrainingJobState.FAILED: "training.failed"}
log = get_logger("lungcad.service.webhooks")


# -- signing ---------------------------------------------------------------------------------------------
def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Lungcad-Signature`` value: ``sha256=`` + hex HMAC-SHA256 under ``secret`` (its UTF-8 bytes)
    of ``f"{timestamp}."`` followed by the body bytes."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: int | str | None,
    body: bytes,
    header: str | None,
    tolerance_s: float = TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: whether ``header`` signs ``body`` at ``timestamp`` under ``secret`` and the timestamp
    (unix seconds) is within ``tolerance_s`` seconds of ``now`` (default: the clock) -- a captured request
    replayed later fails.  Compares in constant time; never raises on malformed input."""
    if not header or timestamp is None:
        return False
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body).encode(), header.strip().encode())


def new_secret() -> str:
    """A webhook's signing secret: ``whsec_`` + 43 url-safe characters (256 random bits)."""
    import secrets

    return "whsec_" + secrets.token_urlsafe(32)


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 2, 4, 8, 16, 32 ... capped."""
    return min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S)


# -- emitting --------------------------------------------------------------------------------------------
def queue_event(
    ctx: ServiceContext, event: str, payload: dict[str, Any], *, webhook_id: str | None = None
) -> list[str]:
    """Write one ``pending`` delivery of ``event`` per active webhook that wants it (only ``webhook_id``,
    whatever its events, when given: the ping); the new delivery ids.  Raises what the database raises."""
    now = utcnow()
    with transaction(ctx.sessions) as s:
        q = select(Webhook).where(Webhook.active.is_(True))
        if webhook_id is not None:
            q = q.where(Webhook.id == webhook_id)
        hooks = [h for h in s.scalars(q) if webhook_id is not None or event in (h.events or [])]
        rows = [
            WebhookDelivery(
                id=uuid.uuid4().hex,
                webhook_id=hook.id,
                event=event,
                payload=payload,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
                status=DeliveryStatus.PENDING,
            )
            for hook in hooks
        ]
        s.add_all(rows)
    return [r.id for r in rows]


def emit(ctx: ServiceContext, event: str, payload: dict[str, Any]) -> int:
    """Queue ``event`` for every active webhook that wants it; returns the number of deliveries written.
    Never raises (called right after a job's state change): logs ``webhook_emit_failed`` and returns 0."""
    try:
        return len(queue_event(ctx, event, payload))
    except Exception as exc:  # noqa: BLE001 - a notification must never fail the job that caused it
        log.warning("webhook_emit_failed", webhook_event=event, error_type=type(exc).__name__)
        return 0


def emit_analysis(ctx: ServiceContext, analysis_id: str) -> int:
    """Emit ``analysis.done`` / ``analysis.failed`` for a finished analysis (read back from its row)."""
    try:
        with ctx.sessions() as s:
            row = s.get(Analysis, analysis_id)
            event = _ANALYSIS_EVENTS.get(row.status) if row is not None else None
            if row is None or event is None:
                return 0
            payload = {
                "analysis_id": row.id,
                "study_id": row.study_id,
                "batch_id": row.batch_id,
                "status": row.status.value,
                "lung_rads": row.lung_rads,
                "n_findings": row.n_findings if row.status is AnalysisStatus.DONE else None,
                "cached": bool(row.cached),
            }
    except Exception as exc:  # noqa: BLE001
        log.warning("webhook_emit_failed", job=analysis_id, error_type=type(exc).__name__)
        return 0
    return emit(ctx, event, payload)


def emit_training(ctx: ServiceContext, job_id: str, state: TrainingJobState) -> int:
    """Emit ``training.done`` / ``training.failed`` for a training job that just reached ``state`` (other
    states: nothing)."""
    event = _TRAINING_EVENTS.get(state)
    if event is None:
        return 0
    return emit(ctx, event, {"training_job_id": job_id, "status": state.value})


# -- delivering ------------------------------------------------------------------------------------------
def body_of(delivery: WebhookDelivery) -> bytes:
    """The request body of a delivery: compact JSON, keys sorted (the same bytes on every attempt)."""
    doc = {
        "delivery_id": delivery.id,
        "event": delivery.event,
        "created_at": as_utc(delivery.created_at).isoformat(),  # type: ignore[union-attr]
        "data": delivery.payload,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _claim(ctx: ServiceContext, delivery_id: str, now: datetime) -> str | None:
    """Take one due delivery for one attempt (``claim_due``); the token, or None when another sender took it
    first or it is no longer due."""
    return claim_due(ctx.sessions, WebhookDelivery, delivery_id, DeliveryStatus.PENDING, now, CLAIM_LEASE_S)


def _send(
    client: httpx.Client, hook: Webhook, delivery: WebhookDelivery, now: datetime
) -> tuple[int | None, str | None]:
    """POST the signed delivery; (status code or None, error text or None for a 2xx)."""
    body = body_of(delivery)
    ts = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "lungcad-webhooks/1",
        "X-Lungcad-Event": delivery.event,
        "X-Lungcad-Delivery": delivery.id,
        "X-Lungcad-Timestamp": str(ts),
        "X-Lungcad-Signature": signature(hook.secret, ts, body),
    }
    try:
        r = client.post(hook.url, content=body, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:  # timeout, refused, DNS, TLS...
        return None, f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
    if 200 <= r.status_code < 300:
        return r.status_code, None
    return r.status_code, f"HTTP {r.status_code}"


def _record(
    ctx: ServiceContext,
    delivery: WebhookDelivery,
    token: str,
    code: int | None,
    error: str | None,
    now: datetime,
    *,
    final: bool = False,
) -> str:
    """Write the attempt's outcome (only while the claim is this attempt's); the new status.  ``final``:
    failed without another attempt."""
    attempts = delivery.attempts + (0 if final else 1)
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_status_code": code,
        "last_error": error,
        "claim": None,
    }
    if error is None:
        values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
    elif final or attempts >= MAX_ATTEMPTS:
        values |= {"status": DeliveryStatus.FAILED}
    else:
        values |= {"next_attempt_at": now + timedelta(seconds=backoff_s(attempts))}
    stmt = (
        update(WebhookDelivery)
        .where(and_(WebhookDelivery.id == delivery.id, WebhookDelivery.claim == token))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    with transaction(ctx.sessions) as s:
        s.execute(stmt)
    return str(values.get("status", DeliveryStatus.PENDING))


def deliver_due(
    ctx: ServiceContext, *, now: datetime | None = None, client: httpx.Client | None = None
) -> int:
    """Send every delivery due at ``now`` (default: the clock; tests step a fake one), at most ``BATCH``;
    returns the number of attempts made.  ``client``: an ``httpx.Client`` to reuse (else one per call)."""
    now = now or utcnow()
    with ctx.sessions() as s:
        due = s.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(BATCH)
        ).all()
    if not due:
        return 0
    own = client if client is not None else httpx.Client(follow_redirects=False)
    sent = 0
    try:
        for delivery_id in due:
            token = _claim(ctx, delivery_id, now)
            if token is None:
                continue
            with ctx.sessions() as s:
                delivery = s.get(WebhookDelivery, delivery_id)
                hook = s.get(Webhook, delivery.webhook_id) if delivery is not None else None
                if delivery is not None:
                    s.expunge(delivery)
                if hook is not None:
                    s.expunge(hook)
            if delivery is None or hook is None:
                continue  # the webhook was deleted meanwhile (with its deliveries): nothing to send
            if not hook.active:
                _record(ctx, delivery, token, None, "the webhook is not active", now, final=True)
                continue
            code, error = _send(own, hook, delivery, now)
            status = _record(ctx, delivery, token, code, error, now)
            sent += 1
            log.info(
                "webhook_attempt", delivery=delivery_id, webhook=hook.id, webhook_event=delivery.event,
                attempt=delivery.attempts + 1, status_code=code, outcome=status,
            )  # fmt: skip
    finally:
        if client is None:
            own.close()
    return sent


def start_delivery_thread(
    ctx: ServiceContext, stop: threading.Event, interval_s: float = 1.0
) -> threading.Thread:
    """Run :func:`deliver_due` every ``interval_s`` seconds in a daemon thread until ``stop`` is set, over one
    HTTP client closed when the thread ends."""
    client = httpx.Client(follow_redirects=False)
    return start_rounds(
        "webhook-delivery",
        lambda: deliver_due(ctx, client=client),
        stop,
        interval_s,
        "webhook_round_failed",
        cleanup=client.close,
    )
