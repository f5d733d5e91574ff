"""Schemas of ``/configs``: a stored configuration version and the difference of two."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ConfigOut(BaseModel):
    """A configuration version: the full tree an analysis ran under (``lungcad.config.LungcadConfig``)."""

    hash: str
    created_at: datetime
    config: dict[str, Any]


class ConfigDifference(BaseModel):
    """One differing leaf: its dotted path and the value in each version (null: absent there)."""

    path: str = Field(examples=["infer.overlap"])
    a: Any
    b: Any
