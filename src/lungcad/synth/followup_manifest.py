"""The ground truth of a synthetic follow-up cohort (``lungcad synth --follow-up``): ``followup.json``.

Layout of a follow-up cohort folder (every path in ``followup.json`` is relative to it)::

    followup.json        FollowupManifest (this module), written last: the cohort is complete when it exists
    prior/               a complete ``lungcad synth`` cohort of the PRIOR scans (manifest.json,
                         annotations.csv, annotations_excluded.csv, seriesuids.csv, scans/SYN-0000/...)
    current/             the same for the CURRENT scans (same patient ids, other UIDs and study dates)

``prior/`` and ``current/`` are ordinary synthetic cohorts, so ``lungcad evaluate``, training and the
cohort readers work on each timepoint as on any other cohort; their LUNA16 CSVs list, per timepoint, the
nodules the simulated readers accepted on that scan (a ``new`` nodule is never in a prior CSV, a
``resolved`` one never in a current CSV).

Coordinates: world millimetres, LPS, ``(x, y, z)`` as LUNA16 writes them (``CTVolume``'s world frame).
The two scans of a patient share one anatomy draw; the current one is the same body under another
positioning (roll about the long axis, a small tilt of the long axis, a shift) and another inspiration
level (a scaling along the body axes about the lung apex).  ``prior_to_current`` is the exact affine map
of anatomy from prior world mm to current world mm: ``x_cur = M @ [x_prior, 1]``.  Nodule centres obey
it to float precision; nodules themselves are not scaled by inspiration (solid tissue), only moved.

Sizes: ``diameter_mm`` is the nominal diameter (the LUNA16 column); ``volume_mm3`` is the nominal volume
``pi / 6 * diameter_mm ** 3``; every linear dimension of a growing or shrinking nodule (core, lobes,
spicules) is scaled by one factor, so ``volume_mm3`` follows the doubling-time law exactly:
``V_cur = V_prior * 2 ** (interval_days / vdt_days)``.  ``mask_volume_mm3`` is the labelled voxels of the
scan's ``label.nii.gz`` times the voxel volume (follows the law up to rasterisation).

Load with ``load_followup_manifest(folder_or_json)``.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lungcad.errors import InputError

FOLLOWUP_MANIFEST = "followup.json"
FOLLOWUP_VERSION = "1.0"
TIMEPOINTS: tuple[str, str] = ("prior", "current")


class NoduleStatus(StrEnum):
    """How a nodule changes from the prior to the current scan (Lung-RADS v2022 with priors vocabulary)."""

    STABLE = "stable"  # on both scans, same size (vdt_days None: infinite)
    GROWING = "growing"  # on both scans, vdt_days > 0
    SHRINKING = "shrinking"  # on both scans, vdt_days < 0 (halving time = -vdt_days)
    NEW = "new"  # on the current scan only
    RESOLVED = "resolved"  # on the prior scan only


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimepointScan(_Model):
    """One scan of a patient (``prior`` or ``current``)."""

    cohort: Literal["prior", "current"] = Field(description="sub-cohort folder holding the scan")
    scan_id: str = Field(description="scan id inside the sub-cohort (= the patient id, e.g. SYN-0000)")
    series_uid: str = Field(description="SeriesInstanceUID (0020,000E); the LUNA16 seriesuid")
    study_uid: str = Field(description="StudyInstanceUID (0020,000D); differs between the two scans")
    study_date: str = Field(
        description="YYYYMMDD, written as StudyDate (0008,0020), SeriesDate (0008,0021), AcquisitionDate "
        "(0008,0022) and ContentDate (0008,0023)"
    )
    dicom_dir: str | None = Field(None, description="DICOM series folder (format dicom|both)")
    mhd: str | None = Field(None, description="MetaImage header, int16 HU (format mhd|both)")
    mask: str = Field(description="label.nii.gz: uint8, value = FollowupNodule.label, 0 elsewhere")
    xml: str = Field(description="simulated LIDC reads of this scan")

    def image(self) -> str:
        """The scan's image: the DICOM folder when written, else the MetaImage header."""
        path = self.dicom_dir or self.mhd
        if path is None:
            raise InputError(f"scan {self.scan_id} ({self.cohort}) lists neither dicom_dir nor mhd")
        return path


class NoduleTimepoint(_Model):
    """A nodule on one scan."""

    center_xyz_mm: tuple[float, float, float] = Field(description="world mm, LPS, LUNA16 order")
    center_zyx_vox: tuple[float, float, float] = Field(description="voxel index (z, y, x) on that scan")
    diameter_mm: float = Field(gt=0, description="nominal diameter (the LUNA16 diameter_mm)")
    volume_mm3: float = Field(gt=0, description="nominal volume pi/6 d^3: obeys the doubling law exactly")
    mask_volume_mm3: float = Field(ge=0, description="labelled voxels x voxel volume")
    in_annotations: bool = Field(description="listed in this timepoint's annotations.csv (readers agreed)")
    readers_contoured: int = Field(ge=0, description="simulated readers who contoured it on this scan")


class FollowupNodule(_Model):
    """One nodule of a patient, with one id on both scans."""

    nodule_id: str = Field(description="stable id, e.g. SYN-0000-N03 (same on both scans)")
    label: int = Field(ge=1, le=255, description="its value in the label mask of every scan it is on")
    status: NoduleStatus
    vdt_days: float | None = Field(
        description="true volume doubling time (days): > 0 growing, < 0 shrinking; None when stable "
        "(infinite) or when on one scan only (new, resolved)"
    )
    texture: str = Field(description="solid | part-solid | ground-glass | calcified")
    shape: str
    location: str
    micronodule: bool = Field(description="< 3 mm (annotations_excluded.csv); always stable")
    prior: NoduleTimepoint | None = Field(description="None for a new nodule")
    current: NoduleTimepoint | None = Field(description="None for a resolved nodule")

    @model_validator(mode="after")
    def _check(self) -> FollowupNodule:
        on = (self.prior is not None, self.current is not None)
        want = {NoduleStatus.NEW: (False, True), NoduleStatus.RESOLVED: (True, False)}.get(
            self.status, (True, True)
        )
        if on != want:
            raise ValueError(f"nodule {self.nodule_id}: status {self.status} but on prior/current = {on}")
        if (self.vdt_days is None) != (self.status not in (NoduleStatus.GROWING, NoduleStatus.SHRINKING)):
            raise ValueError(f"nodule {self.nodule_id}: status {self.status} with vdt_days {self.vdt_days}")
        return self

    def volume_ratio(self) -> float | None:
        """``V_current / V_prior`` of a nodule on both scans (None otherwise)."""
        if self.prior is None or self.current is None:
            return None
        return self.current.volume_mm3 / self.prior.volume_mm3


class PoseChange(_Model):
    """How ``prior_to_current`` was built (descriptive; the matrix is the truth).

    Body frame of a scan: ``world = centre + A @ (scale * body)`` (``lungcad.synth.geometry.BodyFrame``).
    The current frame is the prior one rolled by ``roll_deg`` about the world z axis, its long axis tilted
    by ``tilt_deg`` (shear, x and y), shifted by ``shift_mm`` and scaled by ``inspiration_scale_xyz``
    along the body's (x, y, z) axes about the lung apex.
    """

    roll_deg: float
    tilt_deg: tuple[float, float]
    shift_mm: tuple[float, float, float]
    inspiration_scale_xyz: tuple[float, float, float]


class FollowupPatient(_Model):
    """One synthetic patient: two scans of one anatomy, the exact prior -> current map and the nodules."""

    patient_id: str = Field(description="PatientID (0010,0020), the same on both scans")
    index: int = Field(ge=0)
    prior: TimepointScan
    current: TimepointScan
    interval_days: int = Field(gt=0, description="current study date - prior study date")
    prior_to_current: tuple[tuple[float, float, float, float], ...] = Field(
        description="4 x 4 row-major homogeneous affine, prior world mm -> current world mm (x, y, z)"
    )
    pose_change: PoseChange
    nodules: tuple[FollowupNodule, ...]

    @model_validator(mode="after")
    def _check(self) -> FollowupPatient:
        m = np.asarray(self.prior_to_current, dtype=np.float64)
        if m.shape != (4, 4) or not np.allclose(m[3], [0, 0, 0, 1]) or not np.all(np.isfinite(m)):
            raise ValueError(f"patient {self.patient_id}: prior_to_current must be a 4 x 4 affine")
        return self

    def transform(self) -> np.ndarray:
        """``prior_to_current`` as a float64 ``(4, 4)`` array."""
        return np.asarray(self.prior_to_current, dtype=np.float64)

    def map_prior_to_current(self, xyz_mm: np.ndarray) -> np.ndarray:
        """Prior world points ``(..., 3)`` mm -> current world mm."""
        m = self.transform()
        return np.asarray(xyz_mm, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


class FollowupManifest(_Model):
    """``followup.json``: the whole cohort's ground truth (see the module docstring for the layout)."""

    generator: Literal["lungcad synth --follow-up"] = "lungcad synth --follow-up"
    followup_version: str = FOLLOWUP_VERSION
    generator_version: str
    format: Literal["dicom", "mhd", "both"]
    config: dict = Field(description="the synth section it was made with (with its followup part)")
    n_patients: int = Field(ge=0)
    files: dict[str, str] = Field(description="SHA-256 of the two sub-cohort manifests")
    patients: tuple[FollowupPatient, ...]


def doubling_volume(volume_prior_mm3: float, interval_days: float, vdt_days: float | None) -> float:
    """``V2 = V1 * 2 ** (dt / VDT)``; ``vdt_days`` None is an infinite doubling time (``V2 = V1``)."""
    if vdt_days is None:
        return float(volume_prior_mm3)
    return float(volume_prior_mm3) * 2.0 ** (float(interval_days) / float(vdt_days))


def sphere_volume(diameter_mm: float) -> float:
    """``pi / 6 * d ** 3`` (mm^3)."""
    return math.pi / 6.0 * float(diameter_mm) ** 3


def load_followup_manifest(path: str | Path) -> FollowupManifest:
    """Read and validate ``followup.json`` (``path`` is the cohort folder or the file itself).

    Raises:
        InputError: missing file, not JSON, or not a follow-up manifest (the message names the field).
    """
    p = Path(path)
    file = p / FOLLOWUP_MANIFEST if p.is_dir() else p
    if not file.is_file():
        raise InputError(
            f"no {FOLLOWUP_MANIFEST} here: not a finished follow-up cohort",
            path=file,
            fix="pass a folder made by `lungcad synth --follow-up` (the file is written last)",
        )
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the follow-up manifest: {exc}", path=file) from exc
    try:
        return FollowupManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InputError(
            f"invalid follow-up manifest at {where or 'top level'}: {first['msg']}",
            path=file,
            fix="regenerate it with `lungcad synth --follow-up`",
        ) from exc
