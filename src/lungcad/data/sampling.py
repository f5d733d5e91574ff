"""Where to cut training patches: nodules (positives), lung and vessels (negatives), hard negatives.

A CT has a few nodules in ~10^7 lung voxels, so uniform sampling would almost never show the model a
nodule.  ``PatchSampler`` draws a patch centre from one of four pools:

* positive (``positive_fraction``): a nodule centre plus uniform jitter of up to a quarter patch, so the
  nodule is never always in the middle;
* hard negative (``hard_fraction`` of negatives, once mining has found some): a high-scoring false
  positive of the current model;
* vessel-rich negative (half of the rest): a bright lung voxel (> -500 HU), i.e. a vessel or the hilum,
  the main source of false positives;
* plain negative: any lung voxel.

Negatives within ``exclusion_mm`` of a nodule or an excluded finding are redrawn, so a patch labelled
"no nodule at the centre" never holds one there.  An excluded finding keeps negatives away as if it were at
least ``MIN_EXCLUDED_CLEARANCE_DIAMETER_MM`` wide (below).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lungcad.annotations.model import ExcludedFinding
from lungcad.data.cache import CachedScan

VESSEL_LEVEL = (-500.0 + 1000.0) / 1400.0  # -500 HU in the [-1000, 400] window

MIN_EXCLUDED_CLEARANCE_DIAMETER_MM = 10.0
"""Smallest diameter (mm) an excluded finding is given when keeping training negatives away from it.

This is deliberately not the evaluation's unknown-diameter rule (``EXCLUDED_UNKNOWN_DIAMETER_MM``, which
applies only when the size is unknown): for training, a small excluded finding is treated as at least
10 mm wide.  Why: LUNA16's excluded findings are nodules < 3 mm, nodules only one or two readers marked,
and non-nodules, whose listed sizes are rough; a patch centred 3 mm from a 4 mm excluded lesion would be
labelled "no nodule here" while the lesion is in view.  Example: a 4 mm excluded finding keeps negatives
``10 / 2 + exclusion_mm`` = 10 mm away with the default 5 mm margin (not 2 + 5 = 7 mm); one of unknown size
(-1) or of 12 mm keeps them 10 mm and 11 mm away.  The evaluation never uses this floor.
"""


def excluded_clearance_radius_mm(finding: ExcludedFinding) -> float:
    """Radius (mm) inside which no training negative is centred, before the ``exclusion_mm`` margin.

    Half of ``max(diameter, MIN_EXCLUDED_CLEARANCE_DIAMETER_MM)``; an unknown diameter counts as that floor.
    """
    return max(
        finding.radius_mm(MIN_EXCLUDED_CLEARANCE_DIAMETER_MM), MIN_EXCLUDED_CLEARANCE_DIAMETER_MM / 2.0
    )


@dataclass(frozen=True)
class PatchRequest:
    scan_index: int
    center_zyx: tuple[int, int, int]
    kind: str  # positive | hard | vessel | lung


class _LungPoints:
    """Lung voxel coordinates of one scan, subsampled once (every 4th voxel) to keep memory small."""

    def __init__(self, scan: CachedScan, stride: int = 4) -> None:
        lung = np.asarray(scan.lung[::stride, ::stride, ::stride]).astype(bool)
        img = np.asarray(scan.image[::stride, ::stride, ::stride], dtype=np.float32)
        self.all = np.argwhere(lung) * stride
        self.vessel = np.argwhere(lung & (img > VESSEL_LEVEL)) * stride
        if len(self.all) == 0:  # no lung found: fall back to the whole volume
            self.all = np.argwhere(np.ones_like(lung)) * stride
        if len(self.vessel) == 0:
            self.vessel = self.all


class PatchSampler:
    """Draw patch centres for a list of cached scans.

    Args:
        scans: cached training scans.
        patch_size: (z, y, x) voxels.
        positive_fraction: probability that a patch is centred (with jitter) on a nodule.
        hard_fraction: share of negatives taken from mined hard negatives when there are any.
        exclusion_mm: negatives closer than this (+ the finding's radius) to a nodule are redrawn.
    """

    def __init__(
        self,
        scans: Sequence[CachedScan],
        patch_size: tuple[int, int, int],
        positive_fraction: float = 0.5,
        hard_fraction: float = 0.3,
        exclusion_mm: float = 5.0,
    ) -> None:
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
        self.scans = list(scans)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.positive_fraction = positive_fraction
        self.hard_fraction = hard_fraction
        self.exclusion_mm = exclusion_mm
        self._points = [_LungPoints(s) for s in self.scans]
        self._positives = [(i, k) for i, s in enumerate(self.scans) for k in range(len(s.nodules_zyx))]
        self._avoid = [self._avoid_points(s) for s in self.scans]
        self.hard: list[tuple[int, tuple[int, int, int]]] = []

    @staticmethod
    def _avoid_points(scan: CachedScan) -> tuple[np.ndarray, np.ndarray]:
        pts = [scan.nodules_zyx]
        radii = [scan.diameters_mm / 2.0]
        for finding in scan.record.excluded:
            pts.append(np.atleast_2d(scan.grid.world_to_voxel(finding.center_xyz_mm)))
            radii.append(np.array([excluded_clearance_radius_mm(finding)]))
        return np.concatenate(pts).reshape(-1, 3), np.concatenate(radii)

    def set_hard_negatives(self, hard: Sequence[tuple[int, tuple[int, int, int]]]) -> None:
        """Replace the mined hard negatives: (scan index, centre voxel) pairs."""
        self.hard = list(hard)

    def _is_clear(self, scan_index: int, center: np.ndarray) -> bool:
        pts, radii = self._avoid[scan_index]
        if len(pts) == 0:
            return True
        spacing = np.asarray(self.scans[scan_index].grid.spacing_zyx_mm)
        dist = np.linalg.norm((pts - center) * spacing, axis=1)
        return bool(np.all(dist > radii + self.exclusion_mm))

    def draw(self, rng: np.random.Generator) -> PatchRequest:
        if self._positives and rng.random() < self.positive_fraction:
            i, k = self._positives[int(rng.integers(len(self._positives)))]
            jitter = rng.uniform(-0.25, 0.25, 3) * np.asarray(self.patch_size)
            center = np.round(self.scans[i].nodules_zyx[k] + jitter).astype(int)
            return PatchRequest(i, tuple(int(c) for c in center), "positive")  # type: ignore[arg-type]
        for _ in range(20):
            if self.hard and rng.random() < self.hard_fraction:
                i, c = self.hard[int(rng.integers(len(self.hard)))]
                center, kind = np.asarray(c), "hard"
            else:
                i = int(rng.integers(len(self.scans)))
                kind = "vessel" if rng.random() < 0.5 else "lung"
                pool = self._points[i].vessel if kind == "vessel" else self._points[i].all
                center = pool[int(rng.integers(len(pool)))] + rng.integers(0, 4, 3)
            if kind == "hard" or self._is_clear(i, center):
                return PatchRequest(i, tuple(int(v) for v in center), kind)  # type: ignore[arg-type]
        return PatchRequest(i, tuple(int(v) for v in center), kind)  # type: ignore[arg-type]


def extract_patch(
    array: np.ndarray, center_zyx: Sequence[int], size: Sequence[int], fill: float = 0.0
) -> np.ndarray:
    """Cut a ``size`` patch centred on ``center_zyx`` (voxel ``size // 2`` of the patch), padding outside.

    Works on memory maps: only the overlapping block is read.
    """
    size = np.asarray(size, dtype=int)
    start = np.asarray(center_zyx, dtype=int) - size // 2
    stop = start + size
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(stop, array.shape)
    out = np.full(tuple(size), fill, dtype=array.dtype)
    if np.any(src_hi <= src_lo):
        return out
    dst_lo = src_lo - start
    dst_hi = dst_lo + (src_hi - src_lo)
    out[tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi, strict=True))] = array[
        tuple(slice(a, b) for a, b in zip(src_lo, src_hi, strict=True))
    ]
    return out
