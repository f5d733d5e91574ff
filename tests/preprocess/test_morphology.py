"""Issue 18: the fast lung-mask primitives (``preprocess.morphology``) equal their scipy formulations bitwise.

Each case draws a random blob mask on a random anisotropic grid; the references are the
``scipy.ndimage`` expressions the lung mask used before (two thresholded EDTs per closing/opening,
grey 1-D filters for the 3 x 3 x 3 closing, ``ndimage.label`` for the numbering, which the lung mask
relies on where components tie in size or touch the same surface voxel).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lungcad.preprocess.lung_outline import INPLANE, _bracketed, _events, lung_side_voxels, lung_sides
from lungcad.preprocess.morphology import (
    ball_rows,
    close_cube3_nearest,
    closing_ball,
    label6,
    label_inplane,
    opening_ball,
)

SPACINGS = (0.7, 1.25, 2.342496, 2.5, 2.8, 2.8125, 3.0, 5.0)
CASES = range(40)


def _case(seed: int) -> tuple[np.ndarray, tuple[float, float, float], float]:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(4, 36, 3))
    blobs = rng.random(shape) < float(rng.choice([0.01, 0.05, 0.3]))
    mask = ndimage.binary_dilation(blobs, iterations=int(rng.integers(0, 3)))
    mask[tuple(s // 2 for s in shape)] = True
    spacing = tuple(float(v) for v in rng.choice(SPACINGS, 3))
    return mask, spacing, float(rng.choice([2.5, 5.0, 7.5, 8.0, 10.0]))  # type: ignore[return-value]


def _edt_closing(mask: np.ndarray, r: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """The former ``lung_mask._closing_mm``."""
    pad = [int(np.ceil(r / s)) + 1 for s in spacing]
    padded = np.pad(mask, [(p, p) for p in pad])
    dilated = ndimage.distance_transform_edt(~padded, sampling=spacing) <= r
    closed = ndimage.distance_transform_edt(dilated, sampling=spacing) > r
    return closed[tuple(slice(p, p + n) for p, n in zip(pad, mask.shape, strict=True))]


def _edt_opening(mask: np.ndarray, r: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """The former ``lung_outline._opening_mm`` (on the whole array: the box changes nothing)."""
    core = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing) > r
    if not core.any():
        return np.zeros_like(mask)
    return (ndimage.distance_transform_edt(~core, sampling=spacing) <= r)[1:-1, 1:-1, 1:-1]


@pytest.mark.parametrize("seed", CASES)
def test_ball_closing_and_opening_equal_the_thresholded_edts(seed: int) -> None:
    mask, spacing, r = _case(seed)
    np.testing.assert_array_equal(closing_ball(mask, r, spacing), _edt_closing(mask, r, spacing))
    np.testing.assert_array_equal(opening_ball(mask, r, spacing), _edt_opening(mask, r, spacing))


def test_a_tie_on_the_ball_surface_falls_inside_like_scipy() -> None:
    # 4 slices x 2.5 mm = 10 mm exactly: inside a 10 mm ball (scipy: distance <= radius)
    rows = ball_rows(10.0, (2.5, 2.8125, 2.8125))
    assert (4, 0, 0) in rows and (-4, 0, 0) in rows and all(abs(dz) <= 4 for dz, _, _ in rows)
    mask = np.zeros((11, 9, 9), dtype=bool)
    mask[1] = mask[9] = True  # two planes 20 mm apart: their dilations meet at slice 5 only on the tie
    closed = closing_ball(mask, 10.0, (2.5, 2.8125, 2.8125))
    np.testing.assert_array_equal(closed, _edt_closing(mask, 10.0, (2.5, 2.8125, 2.8125)))
    assert closed[1:10, 4, 4].all()


@pytest.mark.parametrize("seed", CASES)
def test_cube_closing_equals_grey_filters_with_nearest_faces(seed: int) -> None:
    mask, _, _ = _case(seed)
    grey = mask.view(np.uint8)
    for axis in range(3):
        grey = ndimage.maximum_filter1d(grey, 3, axis=axis, mode="nearest")
    for axis in range(3):
        grey = ndimage.minimum_filter1d(grey, 3, axis=axis, mode="nearest")
    np.testing.assert_array_equal(close_cube3_nearest(mask), grey.astype(bool))


@pytest.mark.parametrize("seed", CASES)
def test_labels_are_numbered_like_ndimage_label(seed: int) -> None:
    mask, _, _ = _case(seed)
    ref, n_ref = ndimage.label(mask)
    labels, n = label6(mask)
    assert n == n_ref and np.array_equal(labels, ref)
    ref, n_ref = ndimage.label(mask, structure=INPLANE)
    labels, n = label_inplane(mask)
    assert n == n_ref and np.array_equal(labels, ref)
    # a non-contiguous view is labelled in its own C order too
    ref, _ = ndimage.label(mask[:, ::-1].T)
    assert np.array_equal(label6(mask[:, ::-1].T)[0], ref)


@pytest.mark.parametrize("seed", range(10))
def test_side_voxel_counts_match_the_side_labels(seed: int) -> None:
    mask, _, _ = _case(seed)
    body = np.ones_like(mask)
    body[..., : mask.shape[2] // 3] = False  # an off-centre midline
    side = lung_sides(mask, body)
    assert set(np.unique(side[mask])) <= {1, 2} and not side[~mask].any()
    assert lung_side_voxels(mask, body) == (int((side == 1).sum()), int((side == 2).sum()))


def _accumulate_bracketed(side: np.ndarray, body: np.ndarray, axis: int, max_gap: int) -> np.ndarray:
    """The former ``lung_outline._bracketed``: full running extrema by ``np.maximum.accumulate``."""
    n = side.shape[axis]
    shape = [1, 1, 1]
    shape[axis] = n
    idx4 = (4 * np.arange(n, dtype=np.int32)).reshape(shape)
    label = np.where(body, side, np.int8(3)).astype(np.int32)
    event = label != 0
    prev = np.maximum.accumulate(np.where(event, idx4 + label, -4), axis=axis)
    after = np.where(event, idx4 + label, 4 * n)
    nxt = np.flip(np.minimum.accumulate(np.flip(after, axis), axis=axis), axis)
    gap = (nxt >> 2) - (prev >> 2) - 1
    flanked = (prev >= 0) & (nxt < 4 * n) & (gap <= max_gap) & ((prev & 3) == (nxt & 3))
    return flanked & (label == 0) & (((prev & 3) == 1) | ((prev & 3) == 2))


@pytest.mark.parametrize("seed", range(20))
def test_windowed_brackets_equal_the_full_running_extrema(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(2, 60, 3))
    side = rng.choice(np.array([0, 1, 2], dtype=np.int8), shape, p=[0.8, 0.1, 0.1])
    body = rng.random(shape) < 0.95
    events = _events(side, body)
    for axis in range(3):
        for max_gap in (0, 1, 5, int(rng.integers(2, 70))):
            expected = _accumulate_bracketed(side, body, axis, max_gap)
            np.testing.assert_array_equal(_bracketed(events, axis, max_gap), expected)
