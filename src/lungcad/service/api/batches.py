"""Routes: ``/batches`` -- analyse many studies at once, follow them, get their findings as CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from lungcad.service import batches as lib
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import errors
from lungcad.service.schemas.batches import BatchCreate, BatchOut
from lungcad.service.security import Action

router = APIRouter(prefix="/batches", tags=["batches"])


def _out(b: lib.BatchSummary) -> BatchOut:
    return BatchOut(
        id=b.id,
        created_at=b.created_at,
        n_analyses=len(b.analysis_ids),
        counts=b.counts,
        progress=b.progress,
        finished=b.finished,
        analysis_ids=b.analysis_ids,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchOut,
    dependencies=[Depends(require(Action.ANALYSIS_CREATE))],
    responses=errors(404, 409, 422, 503),
    summary="One analysis per study (all created, or none when one study is unknown or unusable)",
)
def create_batch(body: BatchCreate, ctx: CtxDep) -> BatchOut:
    return _out(lib.create_batch(ctx, body.study_ids, model=body.model, report=body.report))


@router.get(
    "/{batch_id}",
    response_model=BatchOut,
    dependencies=[Depends(require(Action.ANALYSIS_READ))],
    responses=errors(404),
    summary="A batch's analyses per status and mean progress",
)
def get_batch(batch_id: str, s: SessionDep) -> BatchOut:
    return _out(lib.batch_summary(s, batch_id))


@router.get(
    "/{batch_id}/findings.csv",
    response_class=Response,
    response_model=None,  # a CSV table (columns: lungcad.service.batches.CSV_COLUMNS)
    dependencies=[Depends(require(Action.ANALYSIS_READ))],
    responses={
        200: {
            "description": "one row per finding of every done analysis: " + ", ".join(lib.CSV_COLUMNS),
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **errors(404, 422),
    },
    summary="The findings of a batch's done analyses as CSV (no PHI)",
)
def batch_findings(
    batch_id: str,
    ctx: CtxDep,
    s: SessionDep,
    min_probability: Annotated[
        float, Query(ge=0, le=1, description="only findings from this probability")
    ] = 0,
) -> Response:
    text = lib.batch_findings_csv(ctx, s, batch_id, min_probability=min_probability)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-findings.csv"'},
    )
