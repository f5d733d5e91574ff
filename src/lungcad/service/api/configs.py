"""Routes: ``/configs`` -- the configuration versions analyses record (``lungcad.service.configs``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from lungcad.service import configs as lib
from lungcad.service.db.session import as_utc
from lungcad.service.deps import SessionDep, require
from lungcad.service.schemas import errors
from lungcad.service.schemas.configs import ConfigDifference, ConfigOut
from lungcad.service.security import Action

router = APIRouter(prefix="/configs", tags=["configs"], dependencies=[Depends(require(Action.CONFIG_READ))])

Hash = Annotated[str, Query(min_length=1, max_length=64)]


# declared before /{config_hash}, which would otherwise take "diff" for a hash
@router.get(
    "/diff",
    response_model=list[ConfigDifference],
    responses=errors(404, 422),
    summary="The differing leaves of two configuration versions",
)
def diff_configs(a: Hash, b: Hash, s: SessionDep) -> list[ConfigDifference]:
    return [ConfigDifference(path=d.path, a=d.a, b=d.b) for d in lib.diff_configs(s, a, b)]


@router.get(
    "/{config_hash}",
    response_model=ConfigOut,
    responses=errors(404),
    summary="One stored configuration version",
)
def get_config(config_hash: str, s: SessionDep) -> ConfigOut:
    row = lib.get_config(s, config_hash)
    return ConfigOut(hash=row.hash, created_at=as_utc(row.created_at), config=row.config)
