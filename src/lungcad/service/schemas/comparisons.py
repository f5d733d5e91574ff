"""Schemas of ``/comparisons``: the create request and the stored comparison.

The comparison itself is the public ``Comparison`` contract (``lungcad.longitudinal.contract``, published
as ``docs/schema/comparison-<version>.json``): the OpenAPI document shows the contract's own schema.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lungcad.longitudinal.contract import Comparison
from lungcad.service.schemas import RequestModel


class PriorComparisonCreate(RequestModel):
    """``POST /comparisons``: compare a done analysis with a done analysis of a prior study."""

    analysis_id: str = Field(min_length=1, max_length=64, description="the current (newer) analysis")
    prior_analysis_id: str = Field(min_length=1, max_length=64, description="the prior (older) analysis")
    bspline: bool = Field(False, description="add a B-spline stage to the rigid + affine registration")


class PriorComparisonOut(BaseModel):
    """One stored comparison: its id, the two analyses and the ``comparison.json`` document."""

    id: str
    analysis_id: str
    prior_analysis_id: str
    created_at: datetime
    comparison: Comparison
