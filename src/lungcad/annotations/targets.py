"""Training targets for the four model heads, built in one pass for a scan's nodules in a given grid.

``build_targets`` returns, keyed by ``BatchKey`` and all of the grid's shape ``(z, y, x)``:

================ ======= ===================================================================================
key              dtype   content
================ ======= ===================================================================================
``SEGMENTATION`` uint8   1 inside any nodule's mask (the consensus mask mapped into the grid, or a ball of
                         the nodule's diameter when no mask is given), else 0
``HEATMAP``      float32 ``exp(-d^2 / (2 sigma^2))`` with ``d`` the world distance (mm) from the nodule's
                         centre voxel and ``sigma = max(sigma_factor x radius, min_sigma_mm)``; the maximum
                         over nodules; exactly 1.0 at each centre voxel
``SIZE``         float32 the nodule's diameter (mm) at its centre voxel (where the heatmap peaks), else 0
``CENTER_MASK``  uint8   1 at the centre voxels, i.e. where ``SIZE`` is defined (the size loss mask)
``TRIAGE``       int8    1 (actionable) / 0 (not) inside each nodule's mask and at its centre voxel,
                         ``TRIAGE_IGNORE`` (-1) elsewhere: background carries no triage label
================ ======= ===================================================================================

The centre voxel is the grid voxel nearest to the world centre (``grid.world_to_voxel`` rounded).  Worked
example: a 10 mm nodule at world (5.4, 0, 0) in a 1 mm grid with origin 0 has its centre voxel at x = 5, and
sigma = max(0.25 x 5, 1.0) = 1.25 mm, so the heatmap is exp(-1 / 3.125) = 0.726 at x = 4 and x = 6.
Where two nodules claim the same centre voxel the larger diameter wins; a nodule whose centre lies outside
the grid contributes its mask and heatmap tail but no centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lungcad.annotations.consensus import ConsensusNodule
from lungcad.annotations.masks import BoxMask, box_mask_to_grid
from lungcad.annotations.model import NoduleGT, NoduleRecord
from lungcad.errors import InputError
from lungcad.types import BatchKey, CTVolume, Grid

TRIAGE_IGNORE = -1


@dataclass(frozen=True)
class TargetNodule(NoduleRecord):
    """What the targets need to know about one nodule: a ``NoduleRecord`` with its triage label and mask.

    Args:
        center_xyz_mm: world centre (x, y, z) mm.
        diameter_mm: diameter (mm, > 0).
        actionable: triage label (Lung-RADS >= 4A or LIDC malignancy >= 4).
        mask: the nodule's voxels in the *target grid's* index space; ``None`` -> a ball of the diameter.

    Raises:
        InputError: a centre or diameter the base record refuses (e.g. ``nodule diameter must be > 0 mm``).
    """

    actionable: bool = False
    mask: BoxMask | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_gt(cls, nodule: NoduleGT) -> TargetNodule:
        """From a cohort's ground-truth nodule (no mask: a ball of its diameter)."""
        return cls(nodule.center_xyz_mm, nodule.diameter_mm, nodule.actionable)

    @classmethod
    def from_consensus(
        cls, nodule: ConsensusNodule, source: Grid | CTVolume, grid: Grid | CTVolume
    ) -> TargetNodule:
        """From a consensus nodule measured in ``source``'s grid; its mask is mapped into ``grid``."""
        gt = nodule.to_gt()  # refuses a cluster of points < 3 mm (no size)
        return cls(
            gt.center_xyz_mm, gt.diameter_mm, gt.actionable, box_mask_to_grid(nodule.mask, source, grid)
        )


def _local_grid(grid: Grid | CTVolume, center: np.ndarray, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxel indices ``(N, 3)`` of the grid within a box of +-``radius_mm`` around ``center`` (clipped)."""
    steps = np.ceil(radius_mm / np.asarray(grid.spacing_zyx_mm)).astype(int) + 1
    lo = np.maximum(center - steps, 0)
    hi = np.minimum(center + steps + 1, grid.shape)
    if np.any(lo >= hi):
        return np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3))
    axes = [np.arange(a, b) for a, b in zip(lo, hi, strict=True)]
    idx = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    return idx, grid.voxel_to_world(idx.astype(np.float64))


def ball_mask(grid: Grid | CTVolume, center_xyz_mm: Sequence[float], diameter_mm: float) -> BoxMask:
    """Grid voxels whose centres lie within ``diameter_mm / 2`` of the world point (clipped to the grid)."""
    center = np.asarray(center_xyz_mm, dtype=np.float64)
    c_vox = np.floor(grid.world_to_voxel(center) + 0.5).astype(int)
    idx, world = _local_grid(grid, c_vox, diameter_mm / 2.0)
    inside = np.linalg.norm(world - center, axis=1) <= diameter_mm / 2.0
    if not inside.any():
        return BoxMask((0, 0, 0), np.zeros((0, 0, 0), dtype=bool))
    pts = idx[inside]
    lo = pts.min(axis=0)
    mask = np.zeros(tuple(pts.max(axis=0) - lo + 1), dtype=bool)
    mask[tuple((pts - lo).T)] = True
    return BoxMask(tuple(int(v) for v in lo), mask)  # type: ignore[arg-type]


def build_targets(
    nodules: Sequence[TargetNodule],
    grid: Grid | CTVolume,
    *,
    sigma_factor: float = 0.25,
    min_sigma_mm: float = 1.0,
) -> dict[BatchKey, np.ndarray]:
    """Segmentation, centre heatmap, size map, centre mask and triage map of a scan in ``grid``.

    Args:
        nodules: the scan's nodules (world centres; masks already in ``grid``'s index space).
        grid: the target geometry (e.g. the 1 mm resampled volume's ``Grid``).
        sigma_factor: heatmap sigma as a fraction of the nodule radius (``annotations.heatmap_sigma_factor``).
        min_sigma_mm: lower bound of sigma in mm (``annotations.heatmap_min_sigma_mm``).

    Returns:
        Dict of five arrays of ``grid.shape`` (dtypes and meaning in the module docstring).

    Raises:
        InputError: a non-positive diameter or sigma parameter.
    """
    if not (sigma_factor > 0 and min_sigma_mm > 0):
        raise InputError(f"sigma_factor and min_sigma_mm must be > 0, got {sigma_factor}, {min_sigma_mm}")
    shape = grid.shape
    seg = np.zeros(shape, dtype=np.uint8)
    heat = np.zeros(shape, dtype=np.float32)
    size = np.zeros(shape, dtype=np.float32)
    center_mask = np.zeros(shape, dtype=np.uint8)
    triage = np.full(shape, TRIAGE_IGNORE, dtype=np.int8)
    for nodule in sorted(nodules, key=lambda n: n.diameter_mm):  # larger diameters written last win
        if not (nodule.diameter_mm > 0 and np.isfinite(nodule.diameter_mm)):
            raise InputError(f"nodule diameter must be > 0 mm, got {nodule.diameter_mm}")
        box = (
            nodule.mask
            if nodule.mask is not None
            else ball_mask(grid, nodule.center_xyz_mm, nodule.diameter_mm)
        )
        inside = box.to_full(shape) if box.count() else None
        label = 1 if nodule.actionable else 0
        if inside is not None:
            seg[inside] = 1
            triage[inside] = np.maximum(triage[inside], label)
        c_vox = np.floor(grid.world_to_voxel(np.asarray(nodule.center_xyz_mm)) + 0.5).astype(int)
        sigma = max(sigma_factor * nodule.diameter_mm / 2.0, min_sigma_mm)
        idx, world = _local_grid(grid, c_vox, 4.0 * sigma)
        if len(idx):
            d2 = np.sum((world - grid.voxel_to_world(c_vox.astype(np.float64))) ** 2, axis=1)
            values = np.exp(-d2 / (2.0 * sigma**2)).astype(np.float32)
            sl = tuple(idx.T)
            heat[sl] = np.maximum(heat[sl], values)
        if np.all((c_vox >= 0) & (c_vox < np.asarray(shape))):
            c = tuple(c_vox)
            heat[c] = 1.0
            size[c] = nodule.diameter_mm
            center_mask[c] = 1
            triage[c] = max(int(triage[c]), label)
    return {
        BatchKey.SEGMENTATION: seg,
        BatchKey.HEATMAP: heat,
        BatchKey.SIZE: size,
        BatchKey.CENTER_MASK: center_mask,
        BatchKey.TRIAGE: triage,
    }


def targets_from_consensus(
    nodules: Sequence[ConsensusNodule],
    source: Grid | CTVolume,
    grid: Grid | CTVolume,
    *,
    sigma_factor: float = 0.25,
    min_sigma_mm: float = 1.0,
) -> dict[BatchKey, np.ndarray]:
    """``build_targets`` for consensus nodules measured in ``source`` (skips clusters of points < 3 mm)."""
    targets = [TargetNodule.from_consensus(n, source, grid) for n in nodules if n.diameter_mm is not None]
    return build_targets(targets, grid, sigma_factor=sigma_factor, min_sigma_mm=min_sigma_mm)
