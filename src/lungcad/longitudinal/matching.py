"""Match current nodules to prior ones: one optimal assignment on registered distance and size similarity.

Cost of pairing current nodule ``i`` with prior nodule ``j`` (prior centre mapped into the current frame):

    cost = distance_ij / max_distance_mm + size_weight * |ln(d_i / d_j)| / ln(max_diameter_ratio)
           (+ UNSHOWN_PENALTY when one of the two is a weak candidate, below min_probability)

and ``scipy.optimize.linear_sum_assignment`` picks the pairing of least total cost, so two nearby nodules
are never both given the same partner and a small nodule next to a large one keeps its own match.

Reject thresholds (a pair beyond either is never matched, whatever the assignment would gain):

* ``max_distance_mm`` (15 mm): what registration plus measurement can move a nodule.  After the affine
  lung registration the residual at a nodule is a few mm (different inspiration moves the lung bases
  most; the synthetic follow-ups measure it, docs/compare.md), each centre estimate is off by ~1 mm (the
  model card's localisation error) and a nodule that grows eccentrically moves its centre by up to its
  radius change (a 6 -> 12 mm nodule: 3 mm).  Screening nodules closer than 15 mm to each other are rare,
  and the size term and the assignment separate those that are.
* ``max_diameter_ratio`` (3): a diameter tripling is a 27-fold volume, ~4.75 doublings: between annual
  screens that needs a doubling time under 77 days, faster than almost all solid cancers (doubling times
  of 20-400 days are the malignant range, and < 20 days is typically infection).  A pair that differs more
  is more likely a new lesion beside a resolved one.

Weak candidates: a current nodule counts as "new" only when the prior scan has nothing there, not even a
candidate below the reporting threshold (``floor_probability`` <= p < ``min_probability``), and a prior
nodule is "resolved" only when the current scan has nothing there.  Pairs of two weak candidates are not
formed (neither would be reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from lungcad.errors import InputError

UNSHOWN_PENALTY = 0.25  # prefer a shown partner over a weak candidate at about the same place
_INFEASIBLE = 1e6


@dataclass(frozen=True)
class MatchCandidate:
    """One nodule of one side: centre in the *current* frame (prior centres registered), size, shown."""

    index: int  # in that scan's result.json findings
    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float
    shown: bool


@dataclass(frozen=True)
class Match:
    current: int | None  # position in the current list given to ``match_nodules``
    prior: int | None
    distance_mm: float | None
    cost: float | None


def pair_cost(
    a: MatchCandidate,
    b: MatchCandidate,
    max_distance_mm: float,
    max_diameter_ratio: float,
    size_weight: float,
) -> tuple[float, float]:
    """(distance mm, cost); cost ``inf`` when the pair breaks a reject threshold or both are weak."""
    distance = float(np.linalg.norm(np.subtract(a.center_xyz_mm, b.center_xyz_mm)))
    small, large = sorted((max(a.diameter_mm, 0.1), max(b.diameter_mm, 0.1)))
    ratio = large / small
    if distance > max_distance_mm or ratio > max_diameter_ratio or not (a.shown or b.shown):
        return distance, math.inf
    cost = distance / max_distance_mm + size_weight * math.log(ratio) / math.log(max_diameter_ratio)
    return distance, cost + (0.0 if a.shown and b.shown else UNSHOWN_PENALTY)


def match_nodules(
    current: list[MatchCandidate],
    prior: list[MatchCandidate],
    *,
    max_distance_mm: float = 15.0,
    max_diameter_ratio: float = 3.0,
    size_weight: float = 0.5,
) -> list[Match]:
    """The optimal assignment, then every shown nodule left over as unmatched (new / resolved).

    Returns matches ordered by current position, then the unmatched prior nodules; weak candidates that
    are neither matched to a shown nodule nor shown themselves do not appear.

    Raises:
        InputError: a non-positive threshold or a ratio <= 1.
    """
    if not (max_distance_mm > 0 and max_diameter_ratio > 1 and size_weight >= 0):
        raise InputError(
            "matching needs max_distance_mm > 0, max_diameter_ratio > 1, size_weight >= 0, got "
            f"{max_distance_mm}, {max_diameter_ratio}, {size_weight}"
        )
    cost = np.full((len(current), len(prior)), _INFEASIBLE)
    dist = np.zeros_like(cost)
    for i, a in enumerate(current):
        for j, b in enumerate(prior):
            d, c = pair_cost(a, b, max_distance_mm, max_diameter_ratio, size_weight)
            dist[i, j] = d
            if math.isfinite(c):
                cost[i, j] = c
    pairs: dict[int, int] = {}
    if cost.size:
        rows, cols = linear_sum_assignment(cost)
        pairs = {int(i): int(j) for i, j in zip(rows, cols, strict=True) if cost[i, j] < _INFEASIBLE}
    out = []
    for i, a in enumerate(current):
        if i in pairs:
            j = pairs[i]
            out.append(Match(i, j, round(float(dist[i, j]), 3), round(float(cost[i, j]), 4)))
        elif a.shown:
            out.append(Match(i, None, None, None))
    taken = set(pairs.values())
    out += [Match(None, j, None, None) for j, b in enumerate(prior) if j not in taken and b.shown]
    return out
