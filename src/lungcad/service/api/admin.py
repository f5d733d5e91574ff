"""Routes: ``/admin`` -- API keys: create (the key shown once), list, revoke, rotate
(``lungcad.service.keys``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from lungcad.service import keys as lib
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, Page, errors
from lungcad.service.schemas.admin import (
    PREFIX_PATTERN,
    KeyCreate,
    KeyOut,
    KeyRotate,
    NewKeyOut,
    RotatedKeyOut,
)
from lungcad.service.security import Action

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require(Action.KEY_ADMIN))])

Prefix = Annotated[str, Path(pattern=PREFIX_PATTERN, description="the key's prefix (8 hex)")]


@router.post(
    "/keys",
    response_model=NewKeyOut,
    status_code=201,
    responses=errors(422),
    summary="Create an API key (the key is in this response only)",
)
def create_key(body: KeyCreate, ctx: CtxDep) -> NewKeyOut:
    new = lib.issue_key(ctx.sessions, body.role, name=body.name, expires_days=body.expires_days)
    return NewKeyOut(**KeyOut.from_row(new.record).model_dump(), key=new.key)


@router.get(
    "/keys",
    response_model=Page[KeyOut],
    responses=errors(422),
    summary="The API keys, newest first (revoked and expired included; never a secret or hash)",
)
def list_keys(s: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> Page[KeyOut]:
    rows, total = lib.list_keys(s, limit=limit, offset=offset)
    return Page[KeyOut](items=[KeyOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset)


@router.delete(
    "/keys/{prefix}",
    response_model=KeyOut,
    responses=errors(404, 409, 422),
    summary="Revoke an API key (idempotent; refused for the last active admin key)",
)
def revoke_key(prefix: Prefix, ctx: CtxDep) -> KeyOut:
    return KeyOut.from_row(lib.revoke_key(ctx.sessions, ctx.keys, prefix))


@router.post(
    "/keys/{prefix}/rotate",
    response_model=RotatedKeyOut,
    status_code=201,
    responses=errors(404, 409, 422),
    summary="Replace a key by a new one of the same role and name; the old one is revoked after grace_s",
)
def rotate_key(prefix: Prefix, ctx: CtxDep, body: KeyRotate | None = None) -> RotatedKeyOut:
    new, old = lib.rotate_key(ctx.sessions, ctx.keys, prefix, grace_s=body.grace_s if body else 0.0)
    return RotatedKeyOut(
        **KeyOut.from_row(new.record).model_dump(), key=new.key, replaces=KeyOut.from_row(old)
    )
