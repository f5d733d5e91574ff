"""The LUNA16 matching rule, written once: which findings hit which nodules, and what each finding counts as.

``evaluate.froc`` (FROC / CPM, per scan after the per-candidate cap) and ``evaluate.metrics.match_findings``
(per-nodule metrics) both call ``luna16_match``; the rules are those of the LUNA16 challenge (Setio et al.,
Medical Image Analysis 42:1-13, 2017) and its official evaluation script:

1. A finding *hits* a nodule when its squared world distance to the nodule centre is strictly below the
   squared radius (a finding exactly on the radius misses).  Squares, not square roots, are compared, as
   the official script does, so that a finding on the boundary is decided exactly as there.
2. Each nodule is matched to its hitting finding of highest probability (ties: the nearer one, then the
   lower index): that finding is a true positive, at its probability.  A finding that is the best hit of two
   overlapping nodules is the match of both (LUNA16 counts it for both).
3. Every other finding that hits a nodule is a *duplicate*: neither true nor false positive (LUNA16 takes
   all hitting candidates out of the pool).
4. Of the findings that hit no nodule, those that hit an excluded finding (``ExcludedFinding``; radius from
   ``ExcludedFinding.radius_mm``, unknown diameter -> ``EXCLUDED_UNKNOWN_DIAMETER_MM``) are *ignored*; all
   others are false positives.

Worked example: nodule d 10 mm at the origin, findings A (0, 0, 3) p 0.6, B (2, 0, 0) p 0.8, C (4, 4, 0)
p 0.9, excluded finding of unknown size at (5, 5, 0).  A and B hit (9 < 25, 4 < 25), C does not (32 > 25):
B is the match (higher probability), A a duplicate, C lies 1.4 mm from the excluded centre (< 5 mm):
ignored.  The nodule enters the FROC curve once, at 0.8; nothing counts as a false positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from lungcad.annotations.model import EXCLUDED_UNKNOWN_DIAMETER_MM, ExcludedFinding


class FindingStatus(StrEnum):
    """What a finding turned out to be after matching (module docstring, rules 2-4)."""

    TRUE_POSITIVE = "tp"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    FALSE_POSITIVE = "fp"


@dataclass(frozen=True)
class Luna16Match:
    """The outcome of ``luna16_match`` for one scan.

    Attributes:
        best: ``(N,)`` int64, per nodule the index of its matched finding, -1 when missed.
        n_hits: ``(N,)`` int64, per nodule the number of findings hitting it (1 match + duplicates).
        status: per finding, its ``FindingStatus``.
    """

    best: np.ndarray
    n_hits: np.ndarray
    status: tuple[FindingStatus, ...]

    def count(self, status: FindingStatus) -> int:
        return sum(s is status for s in self.status)


def excluded_arrays(
    excluded: Sequence[ExcludedFinding], unknown_diameter_mm: float = EXCLUDED_UNKNOWN_DIAMETER_MM
) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(M, 3)`` and radii ``(M,)`` (mm) of excluded findings, with the unknown-diameter rule."""
    xyz = np.asarray([e.center_xyz_mm for e in excluded], dtype=np.float64).reshape(-1, 3)
    radii = np.asarray([e.radius_mm(unknown_diameter_mm) for e in excluded], dtype=np.float64)
    return xyz, radii


def luna16_match(
    nodule_xyz: np.ndarray,
    nodule_diameter_mm: np.ndarray,
    finding_xyz: np.ndarray,
    finding_probability: np.ndarray,
    excluded_xyz: np.ndarray | None = None,
    excluded_radius_mm: np.ndarray | None = None,
) -> Luna16Match:
    """Match one scan's findings to its nodules by the LUNA16 rules (module docstring).

    Inputs are checked by the callers (``match_findings`` validates records, ``evaluate_froc`` reads
    validated CSV rows); here they are plain arrays.

    Args:
        nodule_xyz: ``(N, 3)`` nodule centres, world mm.
        nodule_diameter_mm: ``(N,)`` nodule diameters, mm.
        finding_xyz: ``(K, 3)`` finding centres, world mm.
        finding_probability: ``(K,)`` scores (any real numbers; only their order matters).
        excluded_xyz: ``(M, 3)`` excluded-finding centres, world mm (``excluded_arrays``).
        excluded_radius_mm: ``(M,)`` their radii, mm.

    Returns:
        Per nodule the matched finding and hit count, per finding its status.
    """
    xyz = np.asarray(finding_xyz, dtype=np.float64).reshape(-1, 3)
    prob = np.asarray(finding_probability, dtype=np.float64).reshape(-1)
    centres = np.asarray(nodule_xyz, dtype=np.float64).reshape(-1, 3)
    diameters = np.asarray(nodule_diameter_mm, dtype=np.float64).reshape(-1)
    status = [FindingStatus.FALSE_POSITIVE] * len(xyz)
    hit_any = np.zeros(len(xyz), dtype=bool)
    best = np.full(len(centres), -1, dtype=np.int64)
    n_hits = np.zeros(len(centres), dtype=np.int64)
    for i, (centre, diameter) in enumerate(zip(centres, diameters, strict=True)):
        d2 = np.sum((xyz - centre) ** 2, axis=1)
        hits = np.flatnonzero(d2 < (float(diameter) / 2.0) ** 2)  # Python floats: the script's arithmetic
        n_hits[i] = len(hits)
        if len(hits) == 0:
            continue
        hit_any[hits] = True
        # lexsort: last key first -> highest probability, then nearest, then lowest index
        best[i] = int(hits[np.lexsort((hits, d2[hits], -prob[hits]))[0]])
        status[best[i]] = FindingStatus.TRUE_POSITIVE
    near_excluded = np.zeros(len(xyz), dtype=bool)
    if excluded_xyz is not None and excluded_radius_mm is not None:
        for centre, radius in zip(
            np.asarray(excluded_xyz, dtype=np.float64).reshape(-1, 3),
            np.asarray(excluded_radius_mm, dtype=np.float64).reshape(-1),
            strict=True,
        ):
            near_excluded |= np.sum((xyz - centre) ** 2, axis=1) < float(radius) ** 2
    for j in range(len(xyz)):
        if status[j] is FindingStatus.TRUE_POSITIVE:
            continue
        if hit_any[j]:
            status[j] = FindingStatus.DUPLICATE
        elif near_excluded[j]:
            status[j] = FindingStatus.IGNORED
    return Luna16Match(best, n_hits, tuple(status))
