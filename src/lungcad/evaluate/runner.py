"""Run a detector over a cohort and label its findings against the ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.progress import Progress

from lungcad.data.records import ScanRecord
from lungcad.infer.detector import Detector
from lungcad.types import ScanResult


@dataclass
class ScanEvaluation:
    record: ScanRecord
    result: ScanResult


def run_detector(
    detector: Detector, records: Sequence[ScanRecord], show_progress: bool = True
) -> list[ScanEvaluation]:
    """Detect on every scan, loading the model once; memory stays bounded (volumes are not kept)."""
    out = []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("detecting", total=len(records))
        for rec in records:
            out.append(ScanEvaluation(rec, detector.detect(rec.image_path)))
            progress.advance(task)
    return out


def finding_labels(ev: ScanEvaluation) -> np.ndarray:
    """Per finding: 1 hits a nodule, 0 false positive, -1 hits only an excluded finding (LUNA16 hit rule)."""
    labels = []
    nodules = [(np.asarray(n.center_xyz_mm), n.diameter_mm / 2) for n in ev.record.nodules]
    excluded = [(np.asarray(c), (d if d > 0 else 10.0) / 2) for c, d in ev.record.excluded]
    for f in ev.result.findings:
        p = np.asarray(f.center_xyz_mm)
        if any(np.linalg.norm(p - c) < r for c, r in nodules):
            labels.append(1)
        elif any(np.linalg.norm(p - c) < r for c, r in excluded):
            labels.append(-1)
        else:
            labels.append(0)
    return np.asarray(labels, dtype=int)
