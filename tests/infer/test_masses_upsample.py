"""The mass pass's box-wise upsampling against torch's trilinear interpolation of the whole map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lungcad.infer.masses import UpsampledBoxes


def test_hand_computed_axis() -> None:
    # n = 2 -> N = 4: sources x = 0, 0.25, 0.75, 1 -> 1, 1.25, 1.75, 2 for values (1, 2)
    up = UpsampledBoxes(np.array([1.0, 2.0]).reshape(2, 1, 1), (4, 1, 1))
    np.testing.assert_allclose(up[:, :, :].ravel(), [1.0, 1.25, 1.75, 2.0], rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "box",
    [
        (slice(0, 60), slice(0, 47), slice(0, 33)),  # everything
        (slice(10, 25), slice(3, 40), slice(20, 33)),  # inside, touching the far x edge
        (slice(0, 1), slice(46, 47), slice(0, 5)),  # single planes at the edges
    ],
)
def test_matches_torch_trilinear(box: tuple[slice, slice, slice]) -> None:
    small = np.random.default_rng(0).random((7, 5, 4), dtype=np.float32)
    shape = (60, 47, 33)
    t = torch.from_numpy(small)[None, None]
    full = F.interpolate(t, size=shape, mode="trilinear", align_corners=False)
    up = UpsampledBoxes(small, shape)
    assert up.shape == shape
    np.testing.assert_allclose(up[box], full[0, 0].numpy()[box], rtol=0, atol=2e-6)


@pytest.mark.parametrize("scale", [2.5, 3.0, 1.7])
def test_shrink_mask_matches_shrinking_the_float_mask(scale: float) -> None:
    from lungcad.infer.masses import shrink, shrink_mask

    mask = np.random.default_rng(1).random((41, 37, 29)) > 0.6
    ref, _ = shrink(mask.astype(np.float32), scale)
    ours = shrink_mask(mask, scale)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
