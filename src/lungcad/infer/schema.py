"""The public, versioned JSON Schema of ``ScanResult`` (``result.json``), as pydantic models.

The service's response models reuse these.  ``docs/schema/scan_result-<version>.json`` is the published
copy; a test checks it equals ``scan_result_schema()`` so the two never drift.  Bump ``SCHEMA_VERSION`` in
``lungcad.types`` for any incompatible change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lungcad.types import SCHEMA_VERSION


class FindingModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    center_xyz_mm: tuple[float, float, float] = Field(description="world centre, LPS mm (LUNA16 order)")
    center_zyx_vox: tuple[float, float, float] | None = Field(description="voxel index in the input scan")
    diameter_mm: float = Field(
        ge=0,
        description=(
            "nodule diameter, mm: volume-equivalent diameter of the segmentation, or the size head's "
            "estimate (extra.diameter_source says which)"
        ),
    )
    volume_mm3: float | None = Field(ge=0, description="segmented volume, mm^3")
    probability: float = Field(ge=0, le=1, description="calibrated probability of a nodule")
    texture: Literal["solid", "part-solid", "ground-glass", "calcified"] | None
    triage_probability: float | None = Field(ge=0, le=1, description="calibrated p(actionable)")
    lung_rads: Literal["1", "2", "3", "4A", "4B", "4X"] | None = Field(description="Lung-RADS v2022 category")
    extra: dict[str, Any] = Field(
        description="diameter source and both estimates, HU statistics, raw scores, mask box"
    )


class ScanResultModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    series_uid: str
    findings: list[FindingModel]
    qa: dict[str, Any] = Field(
        description="QA verdict, checks, status (ok | qa_warning | qa_failed), priority"
    )
    timings_s: dict[str, float]
    model_id: str
    model_version: str
    config_hash: str


def scan_result_schema() -> dict[str, Any]:
    schema = ScanResultModel.model_json_schema()
    schema["$id"] = f"urn:lungcad:schema:scan_result:{SCHEMA_VERSION}"
    schema["title"] = f"lungcad ScanResult {SCHEMA_VERSION}"
    return schema
