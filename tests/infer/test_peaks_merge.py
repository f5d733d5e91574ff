"""``merge_close`` (vectorised, issue 18) keeps exactly the points of the pairwise greedy rule."""

from __future__ import annotations

import numpy as np
import pytest

from lungcad.infer.peaks import merge_close


def _pairwise(points: np.ndarray, scores: np.ndarray, min_distance: float) -> list[int]:
    """The rule as first written: a point is kept when every kept point is at least ``min_distance`` away."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(np.linalg.norm(points[i] - points[j]) >= min_distance for j in kept):
            kept.append(int(i))
    return kept


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_points_as_the_pairwise_rule(dtype: type) -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 300))
        # a half-millimetre lattice and tied scores: many pairs exactly at the threshold, ties in the order
        points = (np.round(rng.uniform(0, 40, (n, 3)) * 2) / 2).astype(dtype)
        scores = np.round(rng.uniform(0, 1, n), 1)
        d = float(rng.choice([2.5, 4.0, 5.0, 15.0]))
        assert merge_close(points, scores, d).tolist() == _pairwise(points, scores, d)


def test_exact_threshold_distance_is_not_merged() -> None:
    pts = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 4.999]])  # 5 mm and 4.999 mm from the first
    assert merge_close(pts, np.array([0.9, 0.5, 0.4]), 5.0).tolist() == [0, 1]
    assert merge_close(np.zeros((0, 3)), np.zeros(0), 4.0).tolist() == []


@pytest.mark.parametrize("radius", [0, 1, 3, 5])
def test_near_mask_is_the_dilated_mask_at_the_voxels(radius: int) -> None:
    from scipy import ndimage

    from lungcad.infer.candidates import near_mask

    rng = np.random.default_rng(radius)
    mask = rng.uniform(size=(13, 17, 11)) > 0.995  # sparse blobs, some on the array's faces
    mask[0, 0, 5] = mask[12, 16, 0] = True
    dilated = ndimage.binary_dilation(mask, iterations=radius) if radius else mask
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in mask.shape], indexing="ij"), -1).reshape(-1, 3)
    got = near_mask(mask, idx, radius).reshape(mask.shape)
    np.testing.assert_array_equal(got, dilated)
    assert 0 < dilated.sum() < dilated.size  # the comparison is not trivially all-false / all-true


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_max_filter_is_the_max_pooling(kernel: int) -> None:
    import torch
    import torch.nn.functional as F

    from lungcad.infer.peaks import _max_filter

    h = torch.rand(9, 12, 7, generator=torch.Generator().manual_seed(kernel))
    h[0, 0, 0] = h[4, 5, 6] = 1.0  # plateaus and maxima on the faces
    expected = F.max_pool3d(h[None, None], kernel, stride=1, padding=kernel // 2)[0, 0]
    assert torch.equal(_max_filter(h, kernel), expected)
