"""Run a detector over a cohort and keep what evaluation needs (results, ground-truth masks for Dice).

A scan that cannot be analysed (a corrupt or truncated file, an unreadable mask: any ``LungcadError``) is
either recorded as a :class:`FailedScan` with its reason while the rest of the cohort goes on
(``strict=False``), or stops the run with that error (``strict=True``).  Other exceptions are bugs and
always propagate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress
from scipy import ndimage

from lungcad.annotations.masks import BoxMask, label_mask_on_grid
from lungcad.data.records import ScanRecord
from lungcad.errors import LungcadError
from lungcad.infer.detector import Detector
from lungcad.log import get_logger, log_stage
from lungcad.types import ScanResult


@dataclass
class ScanEvaluation:
    """One scan's result and, for Dice, each GT nodule's mask on the detector's 1 mm grid (or None)."""

    record: ScanRecord
    result: ScanResult
    gt_masks: list[BoxMask | None] = field(default_factory=list)


@dataclass(frozen=True)
class FailedScan:
    """A scan of the cohort that could not be evaluated, and why.

    Attributes:
        scan_id: the scan (LUNA16 ``seriesuid`` or synthetic id).
        image_path: the file or folder that was read.
        reason: the error's message (what, where, the fix).
        error: the error's type, e.g. ``"InputError"``.
    """

    scan_id: str
    image_path: Path
    reason: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"scan_id": self.scan_id, "image_path": str(self.image_path), "reason": self.reason,
                "error": self.error}  # fmt: skip


@dataclass
class CohortRun:
    """The detector's results on every scan that could be analysed, and the scans that could not."""

    scans: list[ScanEvaluation]
    failed: list[FailedScan]


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
    return BoxMask(tuple(int(v) for v in lo + a), comp[a[0] : b[0], a[1] : b[1], a[2] : b[2]])  # type: ignore[arg-type]


def _evaluate_scan(detector: Detector, rec: ScanRecord, with_masks: bool) -> ScanEvaluation:
    run = detector.run(rec.image_path)
    masks: list[BoxMask | None] = []
    if with_masks and run.pre is not None and run.volume is not None:
        grid = run.pre.volume
        seg = label_mask_on_grid(grid, rec.nodules, rec.mask_path)
        masks = [_component_box(seg, grid.world_to_voxel(n.center_xyz_mm)) for n in rec.nodules]
    return ScanEvaluation(rec, run.result, masks)


def run_cohort(
    detector: Detector,
    records: Sequence[ScanRecord],
    *,
    strict: bool = False,
    show_progress: bool = True,
    with_masks: bool = False,
) -> CohortRun:
    """Detect on every scan with one loaded model; memory stays bounded (volumes are dropped per scan).

    Args:
        detector: the loaded model.
        records: the cohort's scans.
        strict: stop at the first scan that fails (its ``LungcadError`` propagates) instead of recording it.
        show_progress: a progress bar on the terminal.
        with_masks: also each ground-truth nodule's mask on the detector's 1 mm grid (for Dice).

    Returns:
        The evaluated scans in cohort order, and the failed ones with their reasons.
    """
    scans: list[ScanEvaluation] = []
    failed: list[FailedScan] = []
    start = time.perf_counter()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("detecting", total=len(records))
        for rec in records:
            try:
                scans.append(_evaluate_scan(detector, rec, with_masks))
            except LungcadError as exc:
                if strict:
                    raise
                failed.append(FailedScan(rec.scan_id, Path(rec.image_path), str(exc), type(exc).__name__))
                get_logger("lungcad.evaluate").warning("evaluate.scan_failed", error=type(exc).__name__)
            progress.advance(task)
    log_stage("evaluate_detect", time.perf_counter() - start, "lungcad.evaluate", failed=len(failed))
    return CohortRun(scans, failed)


def run_detector(
    detector: Detector, records: Sequence[ScanRecord], show_progress: bool = True, with_masks: bool = False
) -> list[ScanEvaluation]:
    """``run_cohort`` in strict mode: every scan must be analysable (calibration needs each of them)."""
    run = run_cohort(detector, records, strict=True, show_progress=show_progress, with_masks=with_masks)
    return run.scans
