"""Brock-model inputs a scan can give: age and sex from DICOM; emphysema and an upper zone from the CT.

The rest (family history of lung cancer, and spiculation unless a reader or a classifier supplies it) a
scan cannot give; they are request options, ``None`` (unknown) by default (``lungcad.annotations.brock``).

Emphysema.  The Brock paper (McWilliams et al., NEJM 2013) scored emphysema *visually* on the baseline CT.
Here it is approximated densitometrically by the relative area of low attenuation: the percentage of lung
voxels below -950 HU (%LAA-950).  The -950 HU threshold is the one validated against microscopic
morphometry on thin sections (Gevenois PA, De Vuyst P, de Maertelaer V, et al. Comparison of computed
density and microscopic morphometry in pulmonary emphysema. Am J Respir Crit Care Med 1996;154:187-192)
and the one COPDGene uses for "% emphysema".  "Emphysema present" at
%LAA-950 >= 5 % of the lung volume is the quantitative-CT definition used in COPDGene analyses, e.g.
Amaza IP, O'Shea AMJ, Fortis S, Comellas AP. Discordant quantitative and visual CT assessments in the
diagnosis of emphysema. Int J Chron Obstruct Pulmon Dis 2021;16:1231-1242 (doi:10.2147/COPD.S284477),
who also show that visual and quantitative calls disagree in a sizeable minority -- so this is an
approximation of the paper's input, not the same measurement.  %LAA-950 depends on the kernel (sharp
kernels add noise below -950 HU), the slice thickness, the dose and inspiration; it assumes the lung mask
excludes the trachea and main bronchi (``preprocess.lung_mask.segment_lungs`` removes them).

Upper lobe.  Without a lobe segmentation the upper lobe is approximated by the *upper zone*: the nodule's
centre lies above the carina when its level is known, else in the upper third of the lungs' craniocaudal
extent.  The oblique fissure runs obliquely, so the upper lobe reaches lower anteriorly and the lower
lobe's superior segment reaches higher posteriorly than any horizontal cut: expect errors near the cut.
"""

from __future__ import annotations

import math

import numpy as np

from lungcad.annotations.brock import Sex
from lungcad.errors import InputError
from lungcad.types import CTVolume, SeriesMetadata

LAA_THRESHOLD_HU = -950.0
EMPHYSEMA_CUTOFF_PERCENT = 5.0
UPPER_ZONE_FRACTION = 1.0 / 3.0
_DAYS_PER_YEAR = 365.25
_AGE_UNIT_YEARS = {"Y": 1.0, "M": 1.0 / 12.0, "W": 7.0 / _DAYS_PER_YEAR, "D": 1.0 / _DAYS_PER_YEAR}


def parse_patient_age(value: str | None, *, strict: bool = False) -> float | None:
    """DICOM PatientAge (0010,1010), an Age String "nnnD|W|M|Y", as years.

    "065Y" -> 65.0, "006M" -> 0.5, "010W" -> 10 * 7 / 365.25, "030D" -> 30 / 365.25.  Absent or empty ->
    ``None``.  A malformed value (not 3 digits and a unit letter) -> ``None``, or ``InputError`` when
    ``strict``: the tolerant default treats it as unknown, which ``brock_risk`` then lists as assumed.
    """
    if value is None:
        return None
    text = str(value).strip().upper()
    if not text:
        return None
    if len(text) == 4 and text[:3].isdigit() and text[3] in _AGE_UNIT_YEARS:
        return int(text[:3]) * _AGE_UNIT_YEARS[text[3]]
    if strict:
        raise InputError(
            f"PatientAge (0010,1010) must be 3 digits and D, W, M or Y (e.g. '065Y'), got {value!r}",
            fix="correct the header, or pass the age in years as a request option",
        )
    return None


def parse_patient_sex(value: str | None) -> Sex | None:
    """DICOM PatientSex (0010,0040): "M" -> "male", "F" -> "female"; "O" (other), empty or absent -> None.

    The Brock model has two sex levels; "O" gives no sex term (the result lists it as assumed).
    """
    if value is None:
        return None
    text = str(value).strip().upper()
    return "male" if text == "M" else "female" if text == "F" else None


def age_sex_from_metadata(metadata: SeriesMetadata) -> tuple[float | None, Sex | None]:
    """(age in years, sex) from the series metadata the loaders keep (DICOM only; other formats: None)."""
    return parse_patient_age(metadata.patient_age), parse_patient_sex(metadata.patient_sex)


def emphysema_from_lung(
    hu: np.ndarray,
    lung_mask: np.ndarray,
    threshold_hu: float = LAA_THRESHOLD_HU,
    cutoff_percent: float = EMPHYSEMA_CUTOFF_PERCENT,
) -> tuple[float, bool]:
    """Percentage of lung voxels below ``threshold_hu`` (%LAA-950) and whether it reaches the cut-off.

    Args:
        hu: CT in HU, any shape (z, y, x).
        lung_mask: bool lung mask of the same shape (airways excluded).
        threshold_hu: a voxel counts as low attenuation when its HU is strictly below this (-950).
        cutoff_percent: "emphysema present" when the percentage is >= this (5 %).

    Returns:
        (percent 0-100, present).  Every voxel has the same volume, so the voxel fraction is the volume
        fraction: 60 of 1000 lung voxels below -950 HU -> 6.0 % -> present.

    Raises:
        InputError: shapes differ, the mask is empty, or the cut-off is outside (0, 100].
    """
    hu = np.asarray(hu)
    mask = np.asarray(lung_mask, dtype=bool)
    if hu.shape != mask.shape:
        raise InputError(
            f"lung mask shape {mask.shape} differs from the CT's {hu.shape}",
            fix="pass the mask segmented on this CT's grid",
        )
    n_lung = int(mask.sum())
    if n_lung == 0:
        raise InputError("the lung mask is empty: no lung to measure emphysema in", fix="check the lung mask")
    if not 0.0 < cutoff_percent <= 100.0:
        raise InputError(f"cutoff_percent must be in (0, 100], got {cutoff_percent}", fix="use 5.0")
    n_low = int(np.count_nonzero(hu[mask] < threshold_hu))
    percent = 100.0 * n_low / n_lung
    return percent, percent >= cutoff_percent


def lung_z_range_mm(volume: CTVolume, lung_mask: np.ndarray) -> tuple[float, float]:
    """World z (mm, LPS: +z is superior) of the lowest and highest lung slices: (inferior, superior).

    The slice indices come from the mask; ``CTVolume.voxel_to_world`` converts them (the one conversion),
    so a volume stored feet-first or head-first gives the same answer.
    """
    mask = np.asarray(lung_mask, dtype=bool)
    if mask.shape != volume.shape:
        raise InputError(
            f"lung mask shape {mask.shape} differs from the CT's {volume.shape}",
            fix="pass the mask segmented on this CT's grid",
        )
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if slices.size == 0:
        raise InputError(
            "the lung mask is empty: no lung extent to locate the nodule in", fix="check the mask"
        )
    cy, cx = (volume.shape[1] - 1) / 2.0, (volume.shape[2] - 1) / 2.0
    z = volume.voxel_to_world(np.array([[slices[0], cy, cx], [slices[-1], cy, cx]], dtype=float))[:, 2]
    return float(z.min()), float(z.max())


def upper_lobe_from_position(
    center_z_mm: float,
    lung_z_range: tuple[float, float],
    *,
    carina_z_mm: float | None = None,
    upper_fraction: float = UPPER_ZONE_FRACTION,
) -> bool:
    """Upper-zone estimate of "nodule in an upper lobe" from the nodule's world z.

    Rule: above the carina when ``carina_z_mm`` is given; else in the upper ``upper_fraction`` of the
    lungs' height.  Example: lungs from z = -250 to -10 mm (240 mm high), upper third from
    -10 - 80 = -90 mm up: a nodule at z = -60 mm -> True, at z = -120 mm -> False.

    Args:
        center_z_mm: nodule centre, world z in mm (``center_xyz_mm[2]``).
        lung_z_range: (inferior, superior) world z of the lungs (``lung_z_range_mm``).
        carina_z_mm: world z of the carina when known (takes precedence).
        upper_fraction: the part of the height counted as upper zone, in (0, 1).

    Raises:
        InputError: a non-finite position, an empty or inverted range, a fraction outside (0, 1).
    """
    lo, hi = float(lung_z_range[0]), float(lung_z_range[1])
    if not (math.isfinite(center_z_mm) and math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise InputError(
            f"need a finite nodule z and a lung z range (inferior < superior), "
            f"got {center_z_mm}, {lung_z_range}",
            fix="compute the range with lung_z_range_mm(volume, lung_mask)",
        )
    if carina_z_mm is not None:
        return center_z_mm > carina_z_mm
    if not 0.0 < upper_fraction < 1.0:
        raise InputError(f"upper_fraction must be in (0, 1), got {upper_fraction}", fix="use 1/3")
    return center_z_mm >= hi - upper_fraction * (hi - lo)
