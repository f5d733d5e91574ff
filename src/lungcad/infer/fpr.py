"""Candidate crops for the false-positive-reduction stage, and the re-scoring itself.

One function cuts the crops for inference and for training (``lungcad.train.fpr_data``), so the second
stage sees at run time exactly what it was trained on.
"""

from __future__ import annotations

import numpy as np

from lungcad.data.sampling import extract_patch
from lungcad.model.fpr import CONTEXT_FACTOR, FINE, FprModel, scalar_features


def candidate_crops(image: np.ndarray, centres_zyx: np.ndarray) -> np.ndarray:
    """(N, 2, 32, 32, 32) float32 crops of the preprocessed image (D, H, W) at ``centres_zyx`` (N, 3) voxels.

    Channel 0: 32^3 at 1 mm; channel 1: 64^3 at 1 mm averaged in 2x2x2 blocks (32^3 at 2 mm).
    """
    centres = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    out = np.empty((len(centres), 2, FINE, FINE, FINE), dtype=np.float32)
    big = FINE * CONTEXT_FACTOR
    f = CONTEXT_FACTOR
    for i, c in enumerate(centres):
        # the centre voxel, rounded, sits at index side // 2 of each box; zero (air) outside the image
        voxel = np.round(c).astype(int)
        out[i, 0] = extract_patch(image, voxel, (FINE,) * 3)
        ctx = extract_patch(image, voxel, (big,) * 3).astype(np.float32, copy=False)
        out[i, 1] = _block_mean(ctx, f)
    return out


def _block_mean(ctx: np.ndarray, f: int) -> np.ndarray:
    """``ctx`` (n f, n f, n f) float32 averaged in f x f x f blocks: ``reshape(...).mean(axis=(1, 3, 5))``.

    For ``f = 2`` the eight block members are added in the order that numpy's reduction uses (the
    innermost pair first, then the pairs one after another), so the result is bitwise the same (checked
    against ``mean`` in ``tests/infer/test_fpr_crops.py``) at 1/16 of the CPU: numpy's multi-axis
    reduction over length-2 axes took 0.19 s of LIDC-IDRI-0001's 92 candidates (issue 18).
    """
    n = ctx.shape[0] // f
    v = ctx.reshape(n, f, n, f, n, f)
    if f != 2:
        return v.mean(axis=(1, 3, 5))
    s = v[:, 0, :, 0, :, 0] + v[:, 0, :, 0, :, 1]
    s += v[:, 0, :, 1, :, 0] + v[:, 0, :, 1, :, 1]
    s += v[:, 1, :, 0, :, 0] + v[:, 1, :, 0, :, 1]
    s += v[:, 1, :, 1, :, 0] + v[:, 1, :, 1, :, 1]
    s /= np.float32(8)
    return s


def rescore(
    fpr: FprModel,
    image: np.ndarray,
    centres_zyx: np.ndarray,
    raw_probability: np.ndarray,
    diameter_mm: np.ndarray,
    bf16: bool = True,
) -> np.ndarray:
    """Second-stage probabilities (N,) of the candidates at ``centres_zyx`` (voxels of the preprocessed
    ``image``), given the detector's raw probabilities and size-head diameters (mm)."""
    crops = candidate_crops(image, centres_zyx)
    return fpr.probability(crops, scalar_features(raw_probability, diameter_mm), bf16=bf16)
