"""What the data pipeline knows about one scan before preprocessing: where it is and its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NoduleGT:
    """A ground-truth nodule in world coordinates.

    Attributes:
        center_xyz_mm: world centre (x, y, z) mm, LPS.
        diameter_mm: diameter in mm (LUNA16 convention).
        actionable: triage label (Lung-RADS >= 4A or malignancy >= 4).
        texture: "solid" / "part-solid" / "ground-glass" / "calcified" when known.
        label: value of this nodule in the scan's label mask (0 when there is no mask).
    """

    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float
    actionable: bool = False
    texture: str | None = None
    label: int = 0


@dataclass(frozen=True)
class ScanRecord:
    """One scan of a cohort.

    Attributes:
        scan_id: unique id (the SeriesInstanceUID for DICOM / LUNA16 scans).
        patient_id: splits are made by patient so no patient is in two splits.
        image_path: DICOM folder, .mhd or .nii.gz.
        nodules: ground-truth nodules (>= 3 mm).
        excluded: LUNA16 "irrelevant findings" (centre, diameter; -1 = unknown) -- never sampled as
            negatives, ignored by FROC.
        mask_path: exact label mask in the image's grid (synthetic cohorts), else ``None`` (balls are used).
    """

    scan_id: str
    patient_id: str
    image_path: Path
    nodules: tuple[NoduleGT, ...] = ()
    excluded: tuple[tuple[tuple[float, float, float], float], ...] = ()
    mask_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
