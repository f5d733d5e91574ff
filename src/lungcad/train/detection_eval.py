"""Full-scan detection on cached scans: validation CPM during training and hard-negative mining."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from lungcad.data.cache import CachedScan, nodules_of
from lungcad.data.sampling import excluded_clearance_radius_mm
from lungcad.evaluate.froc import FrocResult, ScanDetections, froc_of_detections
from lungcad.infer.candidates import candidates_from_prediction
from lungcad.infer.sliding import predict_volume
from lungcad.types import Finding


@dataclass(frozen=True)
class DetectionSettings:
    patch_size: tuple[int, int, int] = (96, 96, 96)
    overlap: float = 0.25
    threshold: float = 0.05
    top_k: int = 100
    bf16: bool = False


def detect_cached(model: nn.Module, scan: CachedScan, settings: DetectionSettings) -> list[Finding]:
    """Candidates of one cached scan (world coordinates), filtered by its lung mask."""
    pred = predict_volume(
        model,
        np.asarray(scan.image, dtype=np.float32),
        settings.patch_size,
        settings.overlap,
        bf16=settings.bf16,
    )
    return candidates_from_prediction(
        pred,
        scan.grid,
        lung_mask=np.asarray(scan.lung).astype(bool),
        threshold=settings.threshold,
        top_k=settings.top_k,
    )


def cohort_froc(
    model: nn.Module, scans: Sequence[CachedScan], settings: DetectionSettings, bootstrap: int = 0
) -> FrocResult | None:
    """LUNA16 FROC of the model over ``scans``; ``None`` when they hold no nodule (CPM undefined)."""
    detections = [
        ScanDetections(
            scan.record.scan_id, nodules_of(scan), scan.record.excluded, detect_cached(model, scan, settings)
        )
        for scan in scans
    ]
    return froc_of_detections(detections, bootstrap_samples=bootstrap)


def mine_hard_negatives(
    model: nn.Module,
    scans: Sequence[CachedScan],
    scan_indices: Sequence[int],
    settings: DetectionSettings,
    per_scan: int = 10,
    clearance_mm: float = 5.0,
) -> list[tuple[int, tuple[int, int, int]]]:
    """The highest-scoring false positives of the current model: ``(scan index, centre voxel)`` pairs.

    A candidate is a false positive when it lies farther than ``radius + clearance_mm`` from every nodule
    and excluded finding of its scan; an excluded finding's radius is the training clearance
    (``data.sampling.excluded_clearance_radius_mm``: at least 5 mm), the same as patch sampling uses.
    """
    hard: list[tuple[int, tuple[int, int, int]]] = []
    for i in scan_indices:
        scan = scans[i]
        avoid = [(np.asarray(n.center_xyz_mm), n.diameter_mm / 2) for n in nodules_of(scan)]
        avoid += [
            (np.asarray(e.center_xyz_mm), excluded_clearance_radius_mm(e)) for e in scan.record.excluded
        ]
        found = 0
        for f in detect_cached(model, scan, settings):
            p = np.asarray(f.center_xyz_mm)
            if all(np.linalg.norm(p - c) > r + clearance_mm for c, r in avoid):
                zyx = tuple(int(round(v)) for v in scan.grid.world_to_voxel(p))
                hard.append((i, zyx))  # type: ignore[arg-type]
                found += 1
                if found >= per_scan:
                    break
    return hard
