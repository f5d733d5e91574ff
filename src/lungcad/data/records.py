"""What the data pipeline knows about one scan before preprocessing: where it is and its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The ground-truth records live with the other annotation types; ``NoduleGT`` is re-exported here because
# a scan record is where the data pipeline meets it.
from lungcad.annotations.model import ExcludedFinding, NoduleGT

__all__ = ["ExcludedFinding", "NoduleGT", "ScanRecord"]


@dataclass(frozen=True)
class ScanRecord:
    """One scan of a cohort.

    Attributes:
        scan_id: unique id (the SeriesInstanceUID for DICOM / LUNA16 scans).
        patient_id: splits are made by patient so no patient is in two splits.
        image_path: DICOM folder, .mhd or .nii.gz.
        nodules: ground-truth nodules (>= 3 mm).
        excluded: LUNA16 "irrelevant findings" (diameter possibly unknown) -- never sampled as negatives,
            ignored by FROC and the per-nodule metrics.
        mask_path: exact label mask in the image's grid (synthetic cohorts), else ``None`` (balls are used).
    """

    scan_id: str
    patient_id: str
    image_path: Path
    nodules: tuple[NoduleGT, ...] = ()
    excluded: tuple[ExcludedFinding, ...] = ()
    mask_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
