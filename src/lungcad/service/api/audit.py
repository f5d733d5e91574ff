"""Routes: ``/admin/audit`` -- the audit log, newest first, filtered (``lungcad.service.audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from lungcad.service import audit as lib
from lungcad.service.deps import SessionDep, require
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, Page, errors
from lungcad.service.schemas.admin import PREFIX_PATTERN
from lungcad.service.schemas.audit import AuditEventOut, Outcome
from lungcad.service.security import Action

router = APIRouter(prefix="/admin/audit", tags=["admin"])


@router.get(
    "",
    response_model=Page[AuditEventOut],
    dependencies=[Depends(require(Action.AUDIT_READ))],
    responses=errors(422),
    summary="The audit log: who read, downloaded, uploaded, analysed or deleted which study; every 403",
)
def list_audit(
    s: SessionDep,
    key_prefix: Annotated[str | None, Query(pattern=PREFIX_PATTERN, description="one key's events")] = None,
    study_id: Annotated[str | None, Query(max_length=32, description="events about one study")] = None,
    action: Annotated[Action | None, Query(description="one permission, e.g. study.read")] = None,
    outcome: Annotated[Outcome | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="from this time (inclusive, ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="before this time (exclusive)")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    offset: OffsetQuery = 0,
) -> Page[AuditEventOut]:
    filters = lib.AuditFilters(key_prefix, study_id, action.value if action else None, outcome, since, until)
    rows, total = lib.query_events(s, filters, limit=limit, offset=offset)
    return Page[AuditEventOut](
        items=[AuditEventOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )
