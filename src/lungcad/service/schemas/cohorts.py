"""Schemas of ``/cohorts``: a registered cohort, the registration request and the synthetic-cohort request."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from lungcad.service.db.models import Cohort
from lungcad.service.db.session import as_utc
from lungcad.service.schemas import RequestModel


class RegisterCohort(RequestModel):
    """A cohort folder on the server (under one of ``LUNGCAD_COHORT_ROOTS``)."""

    path: str = Field(min_length=1, max_length=1000, description="absolute folder on the server")
    name: str | None = Field(None, max_length=200, description="display name; default: the folder's name")


class SyntheticCohort(RequestModel):
    """``lungcad synth`` parameters of a small cohort generated on the server (at most 8 scans, 256 px)."""

    n: int = Field(2, ge=1, le=8, description="scans")
    seed: int = Field(0, ge=0, description="cohort seed")
    shape_xy: int = Field(128, ge=64, le=256, description="in-plane matrix, pixels")
    output_format: Literal["dicom", "mhd", "both"] = "mhd"
    n_slices: int | None = Field(None, ge=8, le=400, description="pin the slice count")
    nodules_per_scan_max: int | None = Field(None, ge=0, le=50)
    name: str | None = Field(None, max_length=200)

    def synth_params(self) -> dict[str, object]:
        """The ``SynthConfig`` fields this request sets."""
        out: dict[str, object] = {
            "n_scans": self.n,
            "seed": self.seed,
            "shape_xy": self.shape_xy,
            "output_format": self.output_format,
        }
        for key in ("n_slices", "nodules_per_scan_max"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


class CohortOut(BaseModel):
    id: str
    name: str
    path: str = Field(description="the folder on the server")
    kind: Literal["synthetic", "luna16", "lidc"]
    n_scans: int = Field(ge=0)
    n_nodules: int = Field(ge=0, description="ground-truth nodules (>= 3 mm) over all scans")
    n_patients: int = Field(ge=0)
    created_at: datetime

    @classmethod
    def from_row(cls, row: Cohort) -> CohortOut:
        return cls(
            id=row.id,
            name=row.name,
            path=row.path,
            kind=row.kind,  # type: ignore[arg-type]
            n_scans=row.n_scans,
            n_nodules=row.n_nodules,
            n_patients=int((row.manifest or {}).get("patients", 0)),
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        )
