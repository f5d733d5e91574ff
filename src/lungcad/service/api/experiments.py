"""Routes: ``/experiments`` -- the MLflow experiments and runs of training, and run comparison
(``lungcad.service.experiments``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from lungcad.service import experiments as lib
from lungcad.service.deps import CtxDep, require
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, Page, errors
from lungcad.service.schemas.experiments import ComparisonOut, ExperimentOut, RunOut
from lungcad.service.security import Action

router = APIRouter(
    prefix="/experiments", tags=["experiments"], dependencies=[Depends(require(Action.EXPERIMENT_READ))]
)


@router.get(
    "",
    response_model=list[ExperimentOut],
    responses=errors(503),
    summary="The MLflow experiments, with their run counts",
)
def list_experiments(ctx: CtxDep) -> list[ExperimentOut]:
    return [ExperimentOut.from_lib(e) for e in lib.list_experiments(ctx.settings)]


@router.get(
    "/runs",
    response_model=Page[RunOut],
    responses=errors(404, 422, 503),
    summary="Runs, newest first, filtered by an MLflow search expression",
)
def list_runs(
    ctx: CtxDep,
    filter: Annotated[  # noqa: A002 - the query parameter's public name
        str,
        Query(
            max_length=2000,
            description='MLflow search_runs filter, e.g. metrics."val/cpm" > 0.5 and params."config/train/lr"'
            " = '0.001'",
        ),
    ] = "",
    experiment: Annotated[str | None, Query(max_length=500, description="experiment name or id")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    offset: OffsetQuery = 0,
) -> Page[RunOut]:
    runs = lib.search_runs(ctx.settings, filter_string=filter, experiment=experiment)
    page = [RunOut.from_lib(r) for r in runs[offset : offset + limit]]
    return Page[RunOut](items=page, total=len(runs), limit=limit, offset=offset)


@router.get(
    "/compare",
    response_model=ComparisonOut,
    responses=errors(404, 422, 503),
    summary="Metric curves, best values, artefacts and the exact configuration difference of runs",
)
def compare_runs(
    ctx: CtxDep,
    runs: Annotated[
        str, Query(min_length=1, max_length=2000, description="comma-separated MLflow run ids (2-10)")
    ],
) -> ComparisonOut:
    return ComparisonOut.from_lib(lib.compare_runs(ctx, runs.split(",")))
