"""Lung-RADS v2022 baseline categories from nodule size and texture, triage labels and scan priority.

Source: American College of Radiology, *Lung-RADS(R) v2022* assessment categories (released November 2022),
https://www.acr.org/Clinical-Resources/Reporting-and-Data-Systems/Lung-Rads (summary table, baseline rows);
explained in Christensen J, Prosper AE, Wu CC, et al. ACR Lung-RADS v2022: Assessment Categories and
Management Recommendations. CHEST 2024;165(3):738-753.  The rows used here:

============ ===================================== =============================================== =========
category     solid                                 part-solid                                      non-solid
============ ===================================== =============================================== =========
1            benign calcification (complete, central, popcorn, concentric rings) or fat, any type
2            < 6 mm  (< 113 mm^3)                  < 6 mm total                                    < 30 mm
3            6 to < 8 mm (113 to < 268 mm^3)       >= 6 mm total with solid component < 6 mm       >= 30 mm
4A           8 to < 15 mm (268 to < 1767 mm^3)     >= 6 mm total with solid component 6 to < 8 mm
4B           >= 15 mm (>= 1767 mm^3)               solid component >= 8 mm
============ ===================================== =============================================== =========

Size is the mean diameter rounded to one decimal place (v2022: "to the nearest tenth of a millimetre"), so
5.96 mm counts as 6.0 mm -> category 3.  The volume thresholds are exactly the volumes of spheres with the
diameter thresholds (pi/6 x 6^3 = 113.1 mm^3), so a volume-equivalent diameter gives the same category as
the volumetric rule.  Not derivable from size and texture alone and therefore not produced here: 0
(incomplete), 4X (additional suspicious features), the juxtapleural / perifissural and airway rules, and
all follow-up (interval growth) rows.

LIDC characteristics -> texture (Armato et al., Med Phys 38:915, 2011, LIDC rating scales):
``calcification`` 1 popcorn, 2 laminated, 3 solid, 5 central are benign patterns -> calcified (category 1);
4 non-central and 6 absent are not.  ``texture`` 1 non-solid/GGO and 2 non-solid/mixed -> ground-glass,
3 part-solid/mixed -> part-solid, 4 solid/mixed and 5 solid -> solid (on the median: < 2.5, < 3.5, else).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lungcad.errors import InputError
from lungcad.types import LungRads, Texture  # LungRads is defined in lungcad.contracts

BENIGN_CALCIFICATION = frozenset({1, 2, 3, 5})
MALIGNANCY_ACTIONABLE = 4.0


def lung_rads_category(
    diameter_mm: float, texture: Texture | str | None, solid_component_mm: float | None = None
) -> LungRads:
    """Baseline Lung-RADS v2022 category of one nodule.

    Args:
        diameter_mm: mean (or volume-equivalent) diameter in mm, > 0.
        texture: solid / part-solid / ground-glass / calcified; ``None`` is treated as solid (the most
            common type, and the conservative reading for a nodule of unknown type).
        solid_component_mm: part-solid only: diameter of the solid component.  Unknown (``None``) gives
            the lowest part-solid category for the total size (3 for >= 6 mm), which is what the table
            allows without it; callers who know it should pass it.

    Raises:
        InputError: a non-positive or non-finite diameter, or an unknown texture.
    """
    if not (diameter_mm > 0 and diameter_mm < float("inf")):
        raise InputError(f"nodule diameter must be a positive finite number of mm, got {diameter_mm}")
    try:
        kind = Texture(texture) if texture is not None else Texture.SOLID
    except ValueError:
        raise InputError(
            f"unknown texture {texture!r}", fix=f"use one of {[t.value for t in Texture]}"
        ) from None
    d = round(float(diameter_mm), 1)
    if kind is Texture.CALCIFIED:
        return LungRads.C1
    if kind is Texture.GROUND_GLASS:
        return LungRads.C2 if d < 30.0 else LungRads.C3
    if kind is Texture.PART_SOLID:
        if d < 6.0:
            return LungRads.C2
        if solid_component_mm is None:
            return LungRads.C3
        s = round(float(solid_component_mm), 1)
        if s < 6.0:
            return LungRads.C3
        return LungRads.C4A if s < 8.0 else LungRads.C4B
    if d < 6.0:
        return LungRads.C2
    if d < 8.0:
        return LungRads.C3
    return LungRads.C4A if d < 15.0 else LungRads.C4B


def texture_from_lidc(characteristics: Mapping[str, float] | None) -> Texture | None:
    """Texture class from (median) LIDC ratings; ``None`` when neither rating is present."""
    if not characteristics:
        return None
    calc = characteristics.get("calcification")
    if calc is not None and round(calc) in BENIGN_CALCIFICATION:
        return Texture.CALCIFIED
    tex = characteristics.get("texture")
    if tex is None:
        return None
    if tex < 2.5:
        return Texture.GROUND_GLASS
    return Texture.PART_SOLID if tex < 3.5 else Texture.SOLID


def is_actionable(category: LungRads, malignancy: float | None = None) -> bool:
    """Training triage label: category 4A or higher, or LIDC median malignancy >= 4."""
    return category.rank >= LungRads.C4A.rank or (
        malignancy is not None and malignancy >= MALIGNANCY_ACTIONABLE
    )


def scan_priority(categories: Iterable[LungRads | str]) -> LungRads:
    """Scan-level priority for worklist ordering: the highest nodule category (1 when there is none)."""
    ranked = [LungRads(c) for c in categories]
    return max(ranked, key=lambda c: c.rank) if ranked else LungRads.C1
