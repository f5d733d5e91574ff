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
(incomplete), 4X (additional suspicious features), the juxtapleural / perifissural and airway rules.  The
follow-up rows (a prior scan to compare with: new, growing, stable nodules) are :func:`lung_rads_with_prior`
(see ``PRIOR_RULES`` below for the rows and the citations).

LIDC characteristics -> texture (Armato et al., Med Phys 38:915, 2011, LIDC rating scales):
``calcification`` 1 popcorn, 2 laminated, 3 solid, 5 central are benign patterns -> calcified (category 1);
4 non-central and 6 absent are not.  ``texture`` 1 non-solid/GGO and 2 non-solid/mixed -> ground-glass,
3 part-solid/mixed -> part-solid, 4 solid/mixed and 5 solid -> solid (on the median: < 2.5, < 3.5, else).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from lungcad.errors import InputError
from lungcad.types import LungRads, Texture  # LungRads is defined in lungcad.contracts

BENIGN_CALCIFICATION = frozenset({1, 2, 3, 5})


class IntervalChange(StrEnum):
    """How a nodule changed between a prior and the current scan (``lungcad.longitudinal``)."""

    NEW = "new"  # on the current scan only
    STABLE = "stable"  # matched, mean diameter within +-1.5 mm
    GROWING = "growing"  # matched, mean diameter up by more than 1.5 mm
    SHRINKING = "shrinking"  # matched, mean diameter down by more than 1.5 mm
    RESOLVED = "resolved"  # on the prior scan only


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


# ---- Lung-RADS v2022 with a prior scan ------------------------------------------------------------------
PRIOR_RULES = """
Lung-RADS v2022 rows that need a prior scan (ACR Lung-RADS v2022 summary table, November 2022; Christensen
et al., CHEST 2024;165(3):738-753, "Nodule growth", "Stepped management"):

* growth: "an increase in mean diameter of > 1.5 mm within a 12-month interval" (sizes to the nearest tenth
  of a mm, so 6.0 -> 7.5 mm is not growth, 6.0 -> 7.6 mm is);
* category 2: solid new < 4 mm; non-solid new or growing < 30 mm (and >= 30 mm stable or slowly growing);
  a category 3 nodule stable or decreased at follow-up (stepped management: 3 -> 2);
* category 3: solid new 4 to < 6 mm; part-solid new < 6 mm total; non-solid new >= 30 mm; a category 4A
  nodule stable or decreased at follow-up (stepped management: 4A -> 3);
* category 4A: solid growing < 8 mm, or new 6 to < 8 mm; part-solid with a new or growing solid component
  < 4 mm;
* category 4B: solid new or growing >= 8 mm; part-solid with a new or growing solid component >= 4 mm;
* size thresholds: a nodule that crosses a size threshold of a higher category is reclassified by size
  even when it does not meet the growth definition (so the result is never below the baseline category of
  its current size, except by the stepped-management rows, which exist to step a stable nodule down).
"""
GROWTH_MM = 1.5  # v2022: growth is > 1.5 mm mean diameter ...
GROWTH_WINDOW_DAYS = 365.0  # ... within a 12-month interval
# Stepped management compares at the recommended follow-up (3 months for 4A, 6 months for 3); a shorter
# interval says too little about stability.  v1.1 stated the floor ("category 3 or 4 nodules unchanged for
# >= 3 months" -> 2); v2022 kept a stable nodule's step-down at follow-up, so 3 months is the shortest
# interval at which this module steps down, and a shorter (or unknown) one keeps the size category.
STEP_DOWN_MIN_DAYS = 90.0


def interval_change(diameter_change_mm: float) -> IntervalChange:
    """Stable, growing or shrinking from the change of mean diameter (current - prior, mm).

    Growth follows v2022 (> 1.5 mm, on sizes rounded to 0.1 mm: pass the difference of rounded sizes).
    v2022 defines no threshold for a decrease; the same 1.5 mm is used, because a smaller change is within
    the measurement error that the growth threshold allows for (a 0.5 mm decrease is "stable or decreased",
    which is what the stepped-management rows treat alike anyway).
    """
    d = round(float(diameter_change_mm), 1)
    if d > GROWTH_MM:
        return IntervalChange.GROWING
    if d < -GROWTH_MM:
        return IntervalChange.SHRINKING
    return IntervalChange.STABLE


def _kind(texture: Texture | str | None) -> Texture:
    try:
        return Texture(texture) if texture is not None else Texture.SOLID
    except ValueError:
        raise InputError(
            f"unknown texture {texture!r}", fix=f"use one of {[t.value for t in Texture]}"
        ) from None


def _new(d: float, kind: Texture, solid: float | None) -> tuple[LungRads, str]:
    if kind is Texture.GROUND_GLASS:
        return (LungRads.C2, "new non-solid < 30 mm") if d < 30.0 else (LungRads.C3, "new non-solid >= 30 mm")
    if kind is Texture.PART_SOLID:
        if d < 6.0:
            return LungRads.C3, "new part-solid < 6 mm total"
        if solid is None:  # a part-solid nodule has a solid component: at least the < 4 mm row
            return LungRads.C4A, "new part-solid >= 6 mm (solid component not measured: the < 4 mm row)"
        if round(solid, 1) < 4.0:
            return LungRads.C4A, "new part-solid, solid component < 4 mm"
        return LungRads.C4B, "new part-solid, solid component >= 4 mm"
    if d < 4.0:
        return LungRads.C2, "new solid < 4 mm"
    if d < 6.0:
        return LungRads.C3, "new solid 4 to < 6 mm"
    if d < 8.0:
        return LungRads.C4A, "new solid 6 to < 8 mm"
    return LungRads.C4B, "new solid >= 8 mm"


def _growing(
    d: float, kind: Texture, solid: float | None, prior_solid: float | None
) -> tuple[LungRads, str] | None:
    """The growth row, or None when the growth rows do not apply (a part-solid nodule whose measured solid
    component did not grow: v2022's part-solid growth rows are about the solid component)."""
    if kind is Texture.GROUND_GLASS:
        if d < 30.0:
            return LungRads.C2, "growing non-solid < 30 mm"
        # v2022 gives 2 for >= 30 mm "stable or slowly growing"; growth > 1.5 mm in 12 months is not slow,
        # so it is read like a new >= 30 mm non-solid nodule (3), the conservative choice
        return LungRads.C3, "growing non-solid >= 30 mm"
    if kind is Texture.PART_SOLID:
        if solid is None or prior_solid is None:
            return LungRads.C4A, "growing part-solid (solid component growth not measured: the < 4 mm row)"
        if round(solid, 1) - round(prior_solid, 1) <= GROWTH_MM:
            return None
        if round(solid, 1) < 4.0:
            return LungRads.C4A, "part-solid with a growing solid component < 4 mm"
        return LungRads.C4B, "part-solid with a growing solid component >= 4 mm"
    if d < 8.0:
        return LungRads.C4A, "growing solid < 8 mm"
    return LungRads.C4B, "growing solid >= 8 mm"


def lung_rads_with_prior(
    change: IntervalChange | str,
    diameter_mm: float,
    texture: Texture | str | None,
    solid_component_mm: float | None = None,
    *,
    prior_diameter_mm: float | None = None,
    prior_solid_component_mm: float | None = None,
    prior_texture: Texture | str | None = None,
    interval_days: float | None = None,
) -> tuple[LungRads, str]:
    """Lung-RADS v2022 category of a nodule on a follow-up scan, and the rule that gave it.

    Args:
        change: new, stable, growing or shrinking (``interval_change``); resolved nodules have no category.
        diameter_mm, texture, solid_component_mm: the nodule now (as :func:`lung_rads_category`).
        prior_diameter_mm, prior_solid_component_mm, prior_texture: the matched nodule on the prior scan
            (required for stable / growing / shrinking; the prior texture defaults to the current one).
        interval_days: days between the two studies; None when a study date is unknown.  Growth over
            more than 12 months that is <= 1.5 mm per 12 months is not v2022 growth: the size rows apply
            (a reader may still call a slow-growing solid nodule 4B).  An unknown interval is read as
            within 12 months (growth rows apply: the conservative reading) and never steps a nodule down.

    Worked example: a solid nodule 7.0 mm on the prior (category 3), 7.4 mm now, 6 months later: stable
    (+0.4 mm), 182 days >= 90, prior category 3 -> 2 ("stable category 3: stepped down to 2").  The same
    nodule at 9.0 mm: growing (+2.0 mm in 6 months), solid >= 8 mm -> 4B.

    Raises:
        InputError: resolved, a bad size or texture, or a matched change without ``prior_diameter_mm``.
    """
    change = IntervalChange(change)
    if change is IntervalChange.RESOLVED:
        raise InputError("a resolved nodule is not on the current scan and has no Lung-RADS category")
    baseline = lung_rads_category(diameter_mm, texture, solid_component_mm)
    kind = _kind(texture)
    d = round(float(diameter_mm), 1)
    if kind is Texture.CALCIFIED:
        return LungRads.C1, "benign calcification"
    if change is IntervalChange.NEW:
        return _at_least(_new(d, kind, solid_component_mm), baseline)
    if prior_diameter_mm is None:
        raise InputError(f"a {change.value} nodule needs the prior nodule's diameter (prior_diameter_mm)")
    prior = lung_rads_category(prior_diameter_mm, prior_texture or texture, prior_solid_component_mm)
    if change is IntervalChange.GROWING:
        growth = d - round(float(prior_diameter_mm), 1)
        slow = interval_days is not None and interval_days > GROWTH_WINDOW_DAYS
        if slow and growth * GROWTH_WINDOW_DAYS / float(interval_days) <= GROWTH_MM:  # type: ignore[arg-type]
            return baseline, f"growth over {interval_days:.0f} days is <= 1.5 mm per 12 months: size category"
        row = _growing(d, kind, solid_component_mm, prior_solid_component_mm)
        if row is not None:
            return _at_least(row, baseline)
        return baseline, "part-solid, solid component not growing: size category"
    # stable or shrinking ("stable or decreased in size")
    if interval_days is None or interval_days < STEP_DOWN_MIN_DAYS:
        why = "unknown" if interval_days is None else f"{interval_days:.0f} days"
        return baseline, f"{change.value}, interval {why} (< 3 months or unknown): size category"
    if baseline.rank > prior.rank:
        return baseline, f"{change.value} but crossed into a higher size category: size category"
    if prior is LungRads.C4A:
        return LungRads.C3, f"{change.value} category 4A at follow-up: stepped down to 3"
    if prior is LungRads.C3:
        return LungRads.C2, f"{change.value} category 3 at follow-up: stepped down to 2"
    return baseline, f"{change.value}: size category"


def _at_least(row: tuple[LungRads, str], baseline: LungRads) -> tuple[LungRads, str]:
    """The prior rule's category, or the size category when that is higher (the size-threshold rule)."""
    if baseline.rank > row[0].rank:
        return baseline, f"{row[1]}; size category {baseline.value} is higher"
    return row
