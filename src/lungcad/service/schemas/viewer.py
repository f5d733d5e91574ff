"""Schemas of the viewer routes: the findings as the report numbers them (``lungcad.report.shown``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lungcad.contracts import LungRads, ScanStatus, Texture


class ViewerFinding(BaseModel):
    """Finding ``number`` of the report = label ``number`` of ``labels.nii.gz``."""

    number: int = Field(ge=1)
    index: int = Field(ge=0, description="its index in the result's findings")
    label: str = Field(description="'Nodule n' or 'Mass n'")
    center_xyz_mm: tuple[float, float, float] = Field(description="world centre, LPS mm")
    diameter_mm: float
    texture: Texture | None
    lung_rads: LungRads | None
    probability: float
    triage_probability: float | None
    lesion_kind: str


class ViewerFindings(BaseModel):
    analysis_id: str
    scan_status: ScanStatus
    min_probability: float = Field(ge=0, le=1, description="shown from this calibrated probability")
    n_candidates: int = Field(ge=0, description="every candidate in result.json (shown or not)")
    findings: list[ViewerFinding]
