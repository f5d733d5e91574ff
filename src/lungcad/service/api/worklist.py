"""Routes: ``/worklist`` -- analysed studies ordered by triage priority (``lungcad.service.worklist``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from lungcad.contracts import LungRads, ScanStatus
from lungcad.service import worklist as lib
from lungcad.service.deps import SessionDep, require
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, errors
from lungcad.service.schemas.worklist import WorklistPage, WorklistRow
from lungcad.service.security import Action, Principal

router = APIRouter(prefix="/worklist", tags=["worklist"])


@router.get(
    "",
    response_model=WorklistPage,
    responses=errors(422),
    summary="Analysed studies, most urgent first (Lung-RADS, triage probability, study date)",
)
def get_worklist(
    s: SessionDep,
    principal: Annotated[Principal, Depends(require(Action.WORKLIST_READ))],
    scan_status: Annotated[ScanStatus | None, Query(description="the result's status")] = None,
    min_lung_rads: Annotated[LungRads | None, Query(description="this category or more urgent")] = None,
    date_from: Annotated[date | None, Query(description="study date from (inclusive)")] = None,
    date_to: Annotated[date | None, Query(description="study date to (inclusive)")] = None,
    patient_id_hash: Annotated[str | None, Query(max_length=64)] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    offset: OffsetQuery = 0,
) -> WorklistPage:
    filters = lib.WorklistFilters(scan_status, min_lung_rads, date_from, date_to, patient_id_hash)
    rows, total = lib.worklist(s, filters, limit=limit, offset=offset)
    phi = principal.can(Action.PHI_READ)
    return WorklistPage(
        items=[WorklistRow.of(a, st, phi=phi) for a, st in rows], total=total, limit=limit, offset=offset
    )
