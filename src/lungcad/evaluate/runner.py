"""Run a detector over a cohort and keep what evaluation needs (results, ground-truth masks for Dice)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.progress import Progress
from scipy import ndimage

from lungcad.annotations.masks import label_mask_on_grid
from lungcad.data.records import ScanRecord
from lungcad.infer.detector import Detector
from lungcad.types import ScanResult

BoxMask = tuple[tuple[int, int, int], np.ndarray]


@dataclass
class ScanEvaluation:
    """One scan's result and, for Dice, each GT nodule's mask on the detector's 1 mm grid (or None)."""

    record: ScanRecord
    result: ScanResult
    gt_masks: list[BoxMask | None] = field(default_factory=list)


def _component_box(seg: np.ndarray, center_zyx: np.ndarray) -> BoxMask | None:
    """The connected component of ``seg`` at (or nearest within 3 voxels of) ``center_zyx``, boxed."""
    c = np.round(center_zyx).astype(int)
    lo = np.maximum(c - 40, 0)
    hi = np.minimum(c + 41, seg.shape)
    if np.any(hi <= lo):
        return None
    box = seg[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] > 0
    labels, _ = ndimage.label(box)
    local = c - lo
    near = labels[tuple(slice(max(0, v - 3), v + 4) for v in local)]
    ids = near[near > 0]
    if ids.size == 0:
        return None
    comp = labels == np.bincount(ids).argmax()
    idx = np.argwhere(comp)
    a, b = idx.min(0), idx.max(0) + 1
    return tuple(int(v) for v in lo + a), comp[a[0] : b[0], a[1] : b[1], a[2] : b[2]]  # type: ignore[return-value]


def run_detector(
    detector: Detector, records: Sequence[ScanRecord], show_progress: bool = True, with_masks: bool = False
) -> list[ScanEvaluation]:
    """Detect on every scan with one loaded model; memory stays bounded (volumes are dropped per scan)."""
    out = []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("detecting", total=len(records))
        for rec in records:
            run = detector.run(rec.image_path)
            masks: list[BoxMask | None] = []
            if with_masks and run.pre is not None and run.volume is not None:
                grid = run.pre.volume
                seg = label_mask_on_grid(grid, rec.nodules, rec.mask_path)
                masks = [_component_box(seg, grid.world_to_voxel(n.center_xyz_mm)) for n in rec.nodules]
            out.append(ScanEvaluation(rec, run.result, masks))
            progress.advance(task)
    return out
