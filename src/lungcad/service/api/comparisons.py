"""Routes: ``/comparisons`` -- compare a done analysis with a prior one (issue 17), read it back.

Creating one needs ``analysis.create`` (it computes, like creating an analysis); reading needs
``analysis.read``.  Each route calls one function of ``lungcad.service.comparisons``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from lungcad.service import audit
from lungcad.service import comparisons as lib
from lungcad.service.db.models import Analysis
from lungcad.service.db.session import as_utc
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import errors
from lungcad.service.schemas.comparisons import PriorComparisonCreate, PriorComparisonOut
from lungcad.service.security import Action, Principal

router = APIRouter(prefix="/comparisons", tags=["comparisons"])

Creator = Annotated[Principal, Depends(require(Action.ANALYSIS_CREATE))]
Read = Depends(require(Action.ANALYSIS_READ))


def _out(row, comparison) -> PriorComparisonOut:  # type: ignore[no-untyped-def]
    return PriorComparisonOut(
        id=row.id,
        analysis_id=row.analysis_id,
        prior_analysis_id=row.prior_analysis_id,
        created_at=as_utc(row.created_at),
        comparison=comparison,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PriorComparisonOut,
    responses=errors(404, 409, 410, 422),
    summary="Compare a done analysis with a prior one (registration, matching, growth, Lung-RADS)",
)
def create_comparison(
    body: PriorComparisonCreate, ctx: CtxDep, request: Request, principal: Creator
) -> PriorComparisonOut:
    """Register the prior scan onto the current one, match the nodules and classify each (new, stable,
    growing, shrinking, resolved) with doubling time and Lung-RADS v2022 with priors.  Both analyses must
    be done and of one patient."""
    row, comparison = lib.create_comparison(
        ctx, body.analysis_id, body.prior_analysis_id, bspline=body.bspline, created_by=principal.prefix
    )
    with ctx.sessions() as s:
        study_id = s.get(Analysis, row.analysis_id).study_id  # type: ignore[union-attr]
    audit.note(request, "comparison", row.id, study_id=study_id)
    return _out(row, comparison)


@router.get(
    "/{comparison_id}",
    response_model=PriorComparisonOut,
    dependencies=[Read],
    responses=errors(404),
    summary="One stored comparison",
)
def get_comparison(comparison_id: str, s: SessionDep) -> PriorComparisonOut:
    return _out(*lib.get_comparison(s, comparison_id))
