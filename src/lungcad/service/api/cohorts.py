"""Routes: ``/cohorts`` -- register a cohort folder on the server, generate a small synthetic one, list them
(``lungcad.service.cohorts``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from lungcad.service import cohorts as lib
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, Page, errors
from lungcad.service.schemas.cohorts import CohortOut, RegisterCohort, SyntheticCohort
from lungcad.service.security import Action

router = APIRouter(prefix="/cohorts", tags=["training"])

READ = [Depends(require(Action.TRAINING_READ))]
WRITE = [Depends(require(Action.COHORT_WRITE))]


@router.get(
    "",
    response_model=Page[CohortOut],
    responses=errors(422),
    dependencies=READ,
    summary="The registered cohorts with scan and nodule counts, newest first",
)
def list_cohorts(
    s: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0
) -> Page[CohortOut]:
    rows, total = lib.list_cohorts(s, limit=limit, offset=offset)
    return Page[CohortOut](
        items=[CohortOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{cohort_id}", response_model=CohortOut, responses=errors(404), dependencies=READ, summary="One cohort"
)
def get_cohort(cohort_id: str, s: SessionDep) -> CohortOut:
    return CohortOut.from_row(lib.get_cohort(s, cohort_id))


@router.post(
    "",
    response_model=CohortOut,
    status_code=201,
    responses={200: {"description": "the folder was registered before", "model": CohortOut}} | errors(422),
    dependencies=WRITE,
    summary="Register a cohort folder on the server (synthetic, LUNA16 or LIDC layout; validated)",
)
def register_cohort(body: RegisterCohort, response: Response, ctx: CtxDep) -> CohortOut:
    row, created = lib.register_cohort(ctx, body.path, body.name)
    if not created:
        response.status_code = 200
    return CohortOut.from_row(row)


@router.post(
    "/synthetic",
    response_model=CohortOut,
    status_code=201,
    responses=errors(422),
    dependencies=WRITE,
    summary="Generate a small synthetic cohort under the data folder (lungcad synth) and register it",
)
def synthetic_cohort(body: SyntheticCohort, ctx: CtxDep) -> CohortOut:
    # a sync route: FastAPI runs it in its thread pool, so a few seconds of generation block no other request
    return CohortOut.from_row(lib.generate_synthetic(ctx, body.synth_params(), body.name))
