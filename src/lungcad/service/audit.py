"""The audit log: who read, downloaded, uploaded, analysed or deleted which study, and every refusal.

One row of ``audit_events`` per authenticated API request, written by the permission dependency
(``lungcad.service.deps.require``), so routes stay thin:

* ``denied``: the key's role may not do the route's action (the 403), written before the refusal;
* ``ok`` / ``failed``: the route ran and returned, or raised (an unknown id, a wrong state...), written
  when it ends -- for ``ok`` in the dependency's exit, which FastAPI runs after the response went out, so
  a client may see its answer a moment before the row is committed.  A failed audit write is logged
  (``audit_write_failed``) and does not fail the request (the response may already be sent).

The resource comes from the URL: the path parameters (``study_id``, ``analysis_id``, ``name`` of a result
file, ``batch_id``, ``prefix``, ``config_hash``) or, for a list, the collection.  A route that creates the
resource (an upload, an analysis) names it with :func:`note`.  ``study_id`` is filled in whenever the
request concerns a study -- for an analysis, its result or a file, looked up by the analysis id in the same
transaction -- so ``GET /admin/audit?study_id=`` finds every access to a study, even after it is deleted.

Rows hold ids only (key prefix, the service's own study and analysis ids, a file name of the result
folder), never patient data.  The table is append-only: nothing here updates or deletes a row, and
migration 0002 adds triggers that make UPDATE and DELETE fail in the database.

Cost per request: one short write transaction (an INSERT; an indexed SELECT for analysis routes; an
UPDATE of ``api_keys.last_used_at`` at most once a minute per key, see :class:`UsageClock`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lungcad.log import get_logger
from lungcad.service.db.models import Analysis, ApiKey, AuditEvent
from lungcad.service.db.session import transaction, utcnow

if TYPE_CHECKING:
    from fastapi import Request

    from lungcad.service.context import ServiceContext
    from lungcad.service.security import Action, Principal

OK, DENIED, FAILED = "ok", "denied", "failed"
OUTCOMES = (OK, DENIED, FAILED)
LAST_USED_EVERY_S = 60.0
_ID_CHARS = 200
# the first path segment under /api/v1 -> the resource type of a list or create request
_COLLECTIONS = {
    "studies": "study",
    "dicomweb": "study",
    "analyses": "analysis",
    "batches": "batch",
    "worklist": "worklist",
    "models": "model",
    "configs": "config",
}
_PARAMS = {"study_id": "study", "batch_id": "batch", "prefix": "api_key", "config_hash": "config"}


@dataclass(frozen=True)
class Resource:
    type: str
    id: str | None = None
    study_id: str | None = None
    analysis_id: str | None = None  # to look the study up


def note(request: Request, resource_type: str, resource_id: str, *, study_id: str | None = None) -> None:
    """Name the resource a route created (an uploaded study, a new analysis) for its audit row."""
    request.state.audit_resource = Resource(resource_type, resource_id, study_id)


def resource_of(request: Request) -> Resource:
    """The resource of a request: what the route noted, else its path parameters, else its collection."""
    noted = getattr(request.state, "audit_resource", None)
    if noted is not None:
        return noted
    params = request.path_params
    analysis = params.get("analysis_id")
    if analysis is not None:
        name = params.get("name")
        if name is not None:  # a download
            return Resource("file", f"{analysis}/{name}"[:_ID_CHARS], analysis_id=analysis)
        return Resource("analysis", analysis, analysis_id=analysis)
    for param, kind in _PARAMS.items():
        if param in params:
            value = str(params[param])[:_ID_CHARS]
            return Resource(kind, value, study_id=value if kind == "study" else None)
    parts = request.url.path.split("/")  # ["", "api", "v1", "studies", ...]
    head = parts[3] if len(parts) > 3 else ""
    if head == "admin":
        return Resource({"keys": "api_key"}.get(parts[4] if len(parts) > 4 else "", parts[-1] or "admin"))
    return Resource(_COLLECTIONS.get(head, head or "unknown"))


def client_ip(request: Request, behind_proxy: bool) -> str | None:
    """The caller's address; behind a trusted proxy, the first X-Forwarded-For entry."""
    if behind_proxy:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded[:64]
    return request.client.host[:64] if request.client else None


class UsageClock:
    """Says when a key's ``last_used_at`` is due for a write: at most once per ``every_s`` per process, so a
    busy key costs one UPDATE a minute, not one per request."""

    def __init__(self, every_s: float = LAST_USED_EVERY_S) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, key_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key_id)
            if last is not None and now - last < self.every_s:
                return False
            if len(self._last) > 100_000:
                self._last.clear()
            self._last[key_id] = now
            return True


def record(
    ctx: ServiceContext,
    request: Request,
    principal: Principal,
    action: Action,
    outcome: str,
    clock: UsageClock | None = None,
) -> None:
    """Append one audit row (and refresh the key's ``last_used_at`` when due).  Never raises: a failed
    audit write is logged (``audit_write_failed``, ids only) and the request goes on."""
    try:
        resource = resource_of(request)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        ip = client_ip(request, ctx.settings.behind_proxy)
        now = utcnow()
        with transaction(ctx.sessions) as s:
            study_id = resource.study_id
            if study_id is None and resource.analysis_id is not None:
                study_id = s.scalar(select(Analysis.study_id).where(Analysis.id == resource.analysis_id))
            s.add(
                AuditEvent(
                    at=now,
                    key_prefix=principal.prefix,
                    role=principal.role.value,
                    action=action.value,
                    resource_type=resource.type,
                    resource_id=resource.id,
                    study_id=study_id,
                    outcome=outcome,
                    request_id=request_id,
                    client_ip=ip,
                )
            )
            if clock is not None and clock.due(principal.key_id):
                s.execute(update(ApiKey).where(ApiKey.id == principal.key_id).values(last_used_at=now))
    except Exception as exc:  # noqa: BLE001 - the audit must not turn a served request into an error
        get_logger("lungcad.audit").error(
            "audit_write_failed", key_prefix=principal.prefix, action=action.value, error=type(exc).__name__
        )


@dataclass(frozen=True)
class AuditFilters:
    key_prefix: str | None = None
    study_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _utc(value: datetime) -> datetime:
    """A bound in UTC (a naive one is taken as UTC): rows are stored in UTC, and SQLite compares text."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def query_events(s: Session, f: AuditFilters, *, limit: int, offset: int) -> tuple[list[AuditEvent], int]:
    """One page of audit rows matching ``f`` (``since`` inclusive, ``until`` exclusive), newest first."""
    conditions: list[Any] = []
    if f.key_prefix:
        conditions.append(AuditEvent.key_prefix == f.key_prefix)
    if f.study_id:
        conditions.append(AuditEvent.study_id == f.study_id)
    if f.action:
        conditions.append(AuditEvent.action == f.action)
    if f.outcome:
        conditions.append(AuditEvent.outcome == f.outcome)
    if f.since is not None:
        conditions.append(AuditEvent.at >= _utc(f.since))
    if f.until is not None:
        conditions.append(AuditEvent.at < _utc(f.until))
    total = s.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0
    rows = s.scalars(
        select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    )
    return list(rows.all()), total
