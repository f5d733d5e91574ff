"""Turn a volume prediction into nodule candidates in world coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lungcad.annotations.model import LunaCandidate
from lungcad.infer.peaks import find_peaks, merge_close
from lungcad.infer.sliding import VolumePrediction
from lungcad.types import CTVolume, Finding


def head_to_input_voxels(zyx_head: np.ndarray, stride: int) -> np.ndarray:
    """Head-grid voxel -> input-grid voxel coordinate of its centre: ``stride * j + (stride - 1) / 2``."""
    return np.asarray(zyx_head, dtype=np.float64) * stride + (stride - 1) / 2.0


def candidates_from_prediction(
    pred: VolumePrediction,
    grid: CTVolume,
    *,
    lung_mask: np.ndarray | None = None,
    threshold: float = 0.05,
    top_k: int = 100,
    min_distance_mm: float = 4.0,
) -> list[Finding]:
    """Peaks of the heatmap as ``Finding``s (world centre, probability, diameter, triage probability).

    Args:
        pred: stitched model outputs on ``grid`` (the 1 mm image the model saw).
        grid: geometry of the image (origin / spacing / direction).
        lung_mask: optional bool mask on ``grid``: peaks outside it are dropped.
        threshold: minimum heatmap probability.
        top_k: at most this many candidates (LUNA16 evaluates 100 per scan).
        min_distance_mm: peaks closer than this are merged (the higher score survives).
    """
    peaks = find_peaks(pred.heatmap, threshold=threshold, top_k=max(top_k * 4, top_k))
    if len(peaks.scores) == 0:
        return []
    vox = head_to_input_voxels(peaks.zyx, pred.head_stride)
    if lung_mask is not None:
        idx = np.clip(np.round(vox).astype(int), 0, np.asarray(lung_mask.shape) - 1)
        inside = lung_mask[tuple(idx.T)]
        vox, peaks = vox[inside], type(peaks)(peaks.zyx[inside], peaks.scores[inside])
    world = grid.voxel_to_world(vox) if len(vox) else np.zeros((0, 3))
    keep = merge_close(world, peaks.scores, min_distance_mm)[:top_k]
    findings = []
    for i in keep:
        j = tuple(int(v) for v in peaks.zyx[i])
        findings.append(
            Finding(
                center_xyz_mm=tuple(float(v) for v in world[i]),
                center_zyx_vox=tuple(float(v) for v in vox[i]),
                diameter_mm=float(pred.diameter_mm[j]),
                probability=float(peaks.scores[i]),
                triage_probability=float(pred.triage[j]),
            )
        )
    return findings


def to_luna_candidates(series_uid: str, findings: Sequence[Finding]) -> list[LunaCandidate]:
    """Findings as LUNA16 submission rows (``seriesuid, coordX, coordY, coordZ, probability``)."""
    return [LunaCandidate(series_uid, *f.center_xyz_mm, f.probability) for f in findings]
