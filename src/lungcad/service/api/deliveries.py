"""Routes: ``/analyses/{id}/deliveries`` -- the result delivery log of one analysis (its SEG / SR / PDF
pushed to each configured destination, ``lungcad.service.delivery``) and sending the failed ones again."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lungcad.service import delivery as lib
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import errors
from lungcad.service.schemas.deliveries import ResultDeliveries, ResultDeliveryOut
from lungcad.service.security import Action

router = APIRouter(prefix="/analyses", tags=["analyses"])


@router.get(
    "/{analysis_id}/deliveries",
    response_model=ResultDeliveries,
    dependencies=[Depends(require(Action.ANALYSIS_READ))],
    responses=errors(404),
    summary="Where the analysis's DICOM SEG / SR / PDF were sent: status, attempts and last error each",
)
def list_deliveries(analysis_id: str, s: SessionDep) -> ResultDeliveries:
    rows = lib.list_deliveries(s, analysis_id)
    return ResultDeliveries(analysis_id=analysis_id, items=[ResultDeliveryOut.from_row(r) for r in rows])


@router.post(
    "/{analysis_id}/deliveries/retry",
    response_model=ResultDeliveries,
    dependencies=[Depends(require(Action.ANALYSIS_CREATE))],
    responses=errors(404, 409),
    summary="Send the failed deliveries of a done analysis again (attempts counted afresh)",
)
def retry_deliveries(analysis_id: str, ctx: CtxDep) -> ResultDeliveries:
    rows = lib.redeliver(ctx, analysis_id)
    return ResultDeliveries(analysis_id=analysis_id, items=[ResultDeliveryOut.from_row(r) for r in rows])
