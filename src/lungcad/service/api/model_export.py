"""Routes: exporting a trained model into the registry -- ``POST /training-jobs/{id}/export`` for a
training job of the service, ``POST /models/export`` for a run folder under ``D/runs``
(``lungcad.service.model_export``).  Admin only (``model.write``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from lungcad.service import model_export as lib
from lungcad.service.deps import CtxDep, require
from lungcad.service.schemas import errors
from lungcad.service.schemas.models import ExportRequest, ModelOut, RunExportRequest
from lungcad.service.security import Action, Principal

router = APIRouter(tags=["models"])

Writer = Annotated[Principal, Depends(require(Action.MODEL_WRITE))]


@router.post(
    "/training-jobs/{job_id}/export",
    response_model=ModelOut,
    status_code=201,
    responses=errors(404, 409, 422),
    summary="Export a training job's best checkpoint as a model file (calibrated, with card and lineage) "
    "and register it",
)
async def export_training_job(job_id: str, body: ExportRequest, ctx: CtxDep, who: Writer) -> ModelOut:
    row = await run_in_threadpool(lambda: lib.export_job(ctx, job_id, **_options(body), by=who.prefix))
    return ModelOut.from_row(row)


@router.post(
    "/models/export",
    response_model=ModelOut,
    status_code=201,
    responses=errors(404, 409, 422),
    summary="Export a run folder's checkpoint (a run trained with the CLI) and register it",
)
async def export_run_folder(body: RunExportRequest, ctx: CtxDep, who: Writer) -> ModelOut:
    row = await run_in_threadpool(
        lambda: lib.export_run_folder(ctx, body.run, **_options(body), by=who.prefix)
    )
    return ModelOut.from_row(row)


def _options(body: ExportRequest) -> dict:
    return {
        "model_id": body.model_id,
        "model_version": body.model_version,
        "checkpoint": body.checkpoint,
        "calibrate": body.calibrate,
        "activate": body.activate,
    }
