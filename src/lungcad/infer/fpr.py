"""Candidate crops for the false-positive-reduction stage, and the re-scoring itself.

One function cuts the crops for inference and for training (``lungcad.train.fpr_data``), so the second
stage sees at run time exactly what it was trained on.
"""

from __future__ import annotations

import numpy as np

from lungcad.model.fpr import CONTEXT_FACTOR, FINE, FprModel, scalar_features


def _box(image: np.ndarray, centre: np.ndarray, side: int) -> np.ndarray:
    """The ``side``^3 box of ``image`` centred on voxel ``centre`` (rounded), zero-padded where it leaves
    the image (0 is air in the [-1000, 400] HU window).  A box of even side 32 around voxel 10 spans
    voxels -6..25: the centre voxel sits at index 16."""
    lo = np.round(centre).astype(int) - side // 2
    out = np.zeros((side, side, side), dtype=np.float32)
    src = tuple(slice(max(a, 0), min(a + side, n)) for a, n in zip(lo, image.shape, strict=True))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo, strict=True))
    if all(s.stop > s.start for s in src):
        out[dst] = image[src]
    return out


def candidate_crops(image: np.ndarray, centres_zyx: np.ndarray) -> np.ndarray:
    """(N, 2, 32, 32, 32) float32 crops of the preprocessed image (D, H, W) at ``centres_zyx`` (N, 3) voxels.

    Channel 0: 32^3 at 1 mm; channel 1: 64^3 at 1 mm averaged in 2x2x2 blocks (32^3 at 2 mm).
    """
    centres = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    out = np.empty((len(centres), 2, FINE, FINE, FINE), dtype=np.float32)
    big = FINE * CONTEXT_FACTOR
    f = CONTEXT_FACTOR
    for i, c in enumerate(centres):
        out[i, 0] = _box(image, c, FINE)
        ctx = _box(image, c, big)
        out[i, 1] = ctx.reshape(FINE, f, FINE, f, FINE, f).mean(axis=(1, 3, 5))
    return out


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
