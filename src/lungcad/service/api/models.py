"""Routes: ``/models`` -- the registered model files, the active one, upload and activation
(``lungcad.service.models_registry``, ``lungcad.service.model_upload``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from lungcad.service import models_registry as lib
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.errors import ApiError
from lungcad.service.model_upload import receive_model
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, Page, errors
from lungcad.service.schemas.models import UPLOAD_FORM, ActivateModel, ActivationOut, ModelOut
from lungcad.service.security import Action, Principal

router = APIRouter(prefix="/models", tags=["models"])

READ = [Depends(require(Action.MODEL_READ))]
WRITE = [Depends(require(Action.MODEL_WRITE))]
Writer = Annotated[Principal, Depends(require(Action.MODEL_WRITE))]  # who: the key prefix goes on record


def _unknown(sha256: str) -> ApiError:
    return ApiError(
        404, "not_found", f"no model with sha256 {sha256!r}", fix="list them with GET /api/v1/models"
    )


@router.get(
    "",
    response_model=Page[ModelOut],
    responses=errors(422),
    dependencies=READ,
    summary="The registered models, newest first",
)
def list_models(s: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> Page[ModelOut]:
    rows, total = lib.list_models(s, limit=limit, offset=offset)
    return Page[ModelOut](items=[ModelOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get(
    "/active",
    response_model=ModelOut,
    responses=errors(404),
    dependencies=READ,
    summary="The model new analyses use",
)
def get_active_model(s: SessionDep) -> ModelOut:
    row = lib.active_model(s)
    if row is None:  # only if an operator cleared it by hand: open_context always activates one
        raise ApiError(
            404, "not_found", "no model is active", fix="activate one with PUT /api/v1/models/active"
        )
    return ModelOut.from_row(row)


@router.post(
    "",
    response_model=ModelOut,
    status_code=201,
    responses={200: {"description": "the same file was registered before", "model": ModelOut}}
    | errors(400, 413, 415, 422),
    dependencies=WRITE,
    openapi_extra={"requestBody": UPLOAD_FORM},
    summary="Upload a model file (validated; refused with the reason when foreign or incompatible)",
)
async def upload_model(request: Request, response: Response, ctx: CtxDep) -> ModelOut:
    got = await receive_model(
        ctx, request.headers.get("content-type"), request.headers.get("content-length"), request.stream()
    )
    if not got.created:
        response.status_code = 200
    return ModelOut.from_row(got.row)


@router.put(
    "/active",
    response_model=ModelOut,
    responses=errors(404, 422),
    summary="Make a registered model the active one (recorded in the activation history)",
)
def activate_model(body: ActivateModel, ctx: CtxDep, who: Writer) -> ModelOut:
    try:
        row = lib.set_active(ctx, body.sha256, by=who.prefix)
    except LookupError:
        raise _unknown(body.sha256) from None
    return ModelOut.from_row(row)


@router.post(
    "/rollback",
    response_model=ModelOut,
    responses=errors(409),
    summary="Re-activate the model that was active before the current one",
)
def rollback_model(ctx: CtxDep, who: Writer) -> ModelOut:
    try:
        row = lib.rollback(ctx, by=who.prefix)
    except LookupError:
        raise ApiError(
            409,
            "conflict",
            "no model was active before the current one",
            fix="activate a model by its sha256 with PUT /api/v1/models/active",
        ) from None
    return ModelOut.from_row(row)


@router.get(
    "/activations",
    response_model=Page[ActivationOut],
    responses=errors(422),
    dependencies=READ,
    summary="The history of the active model, newest first",
)
def list_activations(
    s: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0
) -> Page[ActivationOut]:
    rows, total = lib.list_activations(s, limit=limit, offset=offset)
    return Page[ActivationOut](
        items=[ActivationOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )
