"""Nodule candidates from the centre heatmap: 3-D max-pool non-maximum suppression, threshold, top-K."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Peaks:
    """Local maxima of a heatmap.

    Attributes:
        zyx: (N, 3) int voxel indices in the heatmap's grid, highest score first.
        scores: (N,) float heatmap probabilities at the peaks.
    """

    zyx: np.ndarray
    scores: np.ndarray


def _max_filter(h: torch.Tensor, kernel: int) -> torch.Tensor:
    """The maximum over each voxel's ``kernel``^3 neighbourhood of a (D, H, W) tensor, outside = -inf.

    Equal to ``F.max_pool3d(h[None, None], kernel, stride=1, padding=kernel // 2)[0, 0]`` (a maximum is
    exact, so the separable form is too), one axis at a time over shifted views: 0.05 s against the
    pooling's 0.19 s CPU on LIDC-IDRI-0001's 142 x 106 x 137 heatmap (issue 18).
    """
    r = kernel // 2
    if r == 0:
        return h.clone()
    out = F.pad(h, (r, r, r, r, r, r), value=float("-inf"))
    for axis in range(3):
        n = out.shape[axis] - 2 * r
        m = out.narrow(axis, 0, n)
        for k in range(1, kernel):
            m = torch.maximum(m, out.narrow(axis, k, n))
        out = m
    return out


def find_peaks(
    heatmap: torch.Tensor | np.ndarray, threshold: float = 0.1, kernel: int = 3, top_k: int = 100
) -> Peaks:
    """Voxels that are the maximum of their ``kernel``^3 neighbourhood and at least ``threshold``.

    Args:
        heatmap: (D, H, W) probabilities (after the sigmoid).
        threshold: minimum score.
        kernel: odd NMS window in voxels (3 on a 2 mm head grid suppresses peaks closer than ~4 mm).
        top_k: keep at most this many, by score.

    Plateaus (equal neighbours) keep every voxel of the plateau; callers that need one point per object
    merge close peaks afterwards (``merge_close``).
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd number, got {kernel}")
    h = torch.as_tensor(heatmap, dtype=torch.float32)
    if h.ndim != 3:
        raise ValueError(f"heatmap must be (D, H, W), got shape {tuple(h.shape)}")
    pooled = _max_filter(h, kernel)
    keep = (h == pooled) & (h >= threshold)
    idx = torch.nonzero(keep)
    scores = h[keep]
    order = torch.argsort(scores, descending=True)[:top_k]
    return Peaks(idx[order].numpy().astype(np.int64), scores[order].numpy().astype(np.float64))


def merge_close(points_mm: np.ndarray, scores: np.ndarray, min_distance_mm: float) -> np.ndarray:
    """Greedy suppression: indices kept, highest score first, none closer than ``min_distance_mm``.

    Args:
        points_mm: (N, 3) positions; scores: (N,).

    A point is kept when no point kept before it (by score) lies closer than ``min_distance_mm``: each kept
    point suppresses its neighbours at once, O(N x kept) vectorised instead of a Python loop over pairs
    (issue 18: 66 000 ``np.linalg.norm`` calls, 0.33 s of LIDC-IDRI-0001's postprocess).  Decisions are
    those of ``np.linalg.norm(points[i] - points[j]) >= min_distance_mm`` exactly: a pair whose vectorised
    distance is within rounding of the threshold is decided by that very expression.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    kept: list[int] = []
    if len(order) == 0:
        return np.asarray(kept, dtype=np.int64)
    pts = np.asarray(points_mm).reshape(len(order), -1)  # the caller's dtype, as the pairwise rule used
    suppressed = np.zeros(len(pts), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        d = pts - pts[i]
        dist = np.sqrt(np.einsum("ij,ij->i", d, d))
        # a few ulps between the two ways of summing three squares; far more than that is a clear decision
        tol = 1000 * np.finfo(dist.dtype).eps * max(1.0, abs(float(min_distance_mm)))
        close = dist < min_distance_mm
        for j in np.flatnonzero(np.abs(dist - min_distance_mm) <= tol):  # at the threshold: exact rule
            close[j] = not np.linalg.norm(pts[j] - pts[i]) >= min_distance_mm
        suppressed |= close
    return np.asarray(kept, dtype=np.int64)
