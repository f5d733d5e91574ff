"""Schemas of ``/comparisons``: the create request and the stored comparison.

The comparison itself is the public ``Comparison`` contract (``lungcad.longitudinal.contract``, published
as ``docs/schema/comparison-<version>.json``): the OpenAPI document shows the contract's own schema.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lungcad.longitudinal.contract import Comparison
from lungcad.service.schemas import RequestModel
from lungcad.service.schemas.analyses import ResultFile


class PriorComparisonCreate(RequestModel):
    """``POST /comparisons``: compare a done analysis with a done analysis of a prior study."""

    analysis_id: str = Field(min_length=1, max_length=64, description="the current (newer) analysis")
    prior_analysis_id: str = Field(min_length=1, max_length=64, description="the prior (older) analysis")
    bspline: bool = Field(False, description="add a B-spline stage to the rigid + affine registration")
    report: bool = Field(
        True,
        description="render the current study's report again with the comparison (HTML / PDF, DICOM SEG / "
        "SR / Encapsulated PDF; GET /comparisons/{id}/files) when the current analysis was made with "
        "report=true; no effect otherwise",
    )


class PriorComparisonOut(BaseModel):
    """One stored comparison: its id, the two analyses, the ``comparison.json`` document and its report."""

    id: str
    analysis_id: str
    prior_analysis_id: str
    created_at: datetime
    report: str | None = Field(
        description="the report rendered with the comparison, a name of GET /comparisons/{id}/files "
        "(report/report.html); null: none was rendered (report=false, or the current analysis was made "
        "without report=true) and the comparison has no files"
    )
    comparison: Comparison


class ComparisonFiles(BaseModel):
    """The files of a comparison's report folder; fetch one from ``GET /comparisons/{id}/files/{name}``."""

    comparison_id: str
    files: list[ResultFile]
