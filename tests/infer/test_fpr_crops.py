"""The FPR context crop's 2x2x2 block mean (issue 18: explicit adds instead of numpy's multi-axis mean)."""

from __future__ import annotations

import numpy as np
import pytest

from lungcad.infer.fpr import _block_mean, candidate_crops


@pytest.mark.parametrize("seed", range(8))
def test_block_mean_is_bitwise_numpy_mean(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hu = rng.uniform(-1500, 1500, (64, 64, 64)).astype(np.float32)
    ctx = (np.clip(hu, -1000, 400) + np.float32(1000)) * np.float32(1 / 1400)  # a windowed image
    ctx[: seed * 4] = 0.0  # air padding outside the image, as extract_patch gives at the scan edge
    expected = ctx.reshape(32, 2, 32, 2, 32, 2).mean(axis=(1, 3, 5))
    got = _block_mean(ctx, 2)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        _block_mean(ctx[:63, :63, :63], 3),
        ctx[:63, :63, :63].reshape(21, 3, 21, 3, 21, 3).mean(axis=(1, 3, 5)),
    )


def test_candidate_crops_channels() -> None:
    image = np.random.default_rng(0).uniform(0, 1, (70, 80, 90)).astype(np.float32)
    crops = candidate_crops(image, np.array([[35.0, 40.0, 45.0], [2.0, 3.0, 4.0]]))
    assert crops.shape == (2, 2, 32, 32, 32)
    np.testing.assert_array_equal(crops[0, 0], image[19:51, 24:56, 29:61])  # the centre at index 16
    np.testing.assert_array_equal(
        crops[0, 1], image[3:67, 8:72, 13:77].reshape(32, 2, 32, 2, 32, 2).mean(axis=(1, 3, 5))
    )
