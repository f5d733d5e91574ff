"""Patch extraction, sampling pools and the spatial augmentation's exact point mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lungcad.data.augment import RandomSpatial, SpatialParams
from lungcad.data.resumable import ResumableSampler
from lungcad.data.sampling import extract_patch


def test_extract_patch_inside_and_padded() -> None:
    a = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    p = extract_patch(a, (2, 3, 3), (3, 3, 3))
    np.testing.assert_array_equal(p, a[1:4, 2:5, 2:5])
    edge = extract_patch(a, (0, 0, 0), (2, 2, 2), fill=-1.0)
    # voxel size//2 = (1, 1, 1) of the patch is the centre (0, 0, 0): the rest is padding
    assert edge[1, 1, 1] == a[0, 0, 0] and edge[0, 0, 0] == -1.0 and edge[1, 1, 0] == -1.0
    outside = extract_patch(a, (50, 50, 50), (2, 2, 2), fill=7.0)
    assert np.all(outside == 7.0)


def test_identity_transform_reproduces_the_patch_exactly() -> None:
    block = torch.rand(1, 12, 12, 12)
    out = RandomSpatial.apply(block, np.eye(3), (8, 8, 8))
    # grid_sample recomputes each sample position in float32 (a ~1e-7 relative error on the grid),
    # so an identity warp reproduces the values to ~1e-6, not bit-exactly.
    torch.testing.assert_close(out, block[:, 2:10, 2:10, 2:10], rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_points_move_with_the_image(seed: int) -> None:
    """A bright voxel's new position is where ``map_points`` says, for flips, turns, rotations and zoom."""
    rng = np.random.default_rng(seed)
    spatial = RandomSpatial(
        SpatialParams(flip=0.5, rot90_axial=0.5, max_rotation_deg=15, scale_range=(0.9, 1.1))
    )
    patch = (24, 24, 24)
    size = spatial.block_size(patch)
    block = np.zeros(size, dtype=np.float32)
    point = np.array(size) // 2 + rng.integers(-5, 6, 3)
    z, y, x = np.ogrid[: size[0], : size[1], : size[2]]
    block[(z - point[0]) ** 2 + (y - point[1]) ** 2 + (x - point[2]) ** 2 <= 4] = 1.0  # small ball
    matrix = spatial.draw(rng)
    out = RandomSpatial.apply(torch.from_numpy(block)[None], matrix, patch)[0].numpy()
    expected = RandomSpatial.map_points(point[None].astype(float), matrix, size, patch)[0]
    com = (np.argwhere(out > 0.01) * out[out > 0.01][:, None]).sum(0) / out[out > 0.01].sum()
    np.testing.assert_allclose(com, expected, atol=0.35)


def test_zoom_of_matrix() -> None:
    assert RandomSpatial.zoom(np.diag([-1.1, 1.1, 1.1])) == pytest.approx(1.1)


def test_resumable_sampler_skip_and_shards() -> None:
    s = ResumableSampler(6)
    s.set_epoch(3)
    assert list(s) == [(3, i) for i in range(6)]
    s.skip(4)
    assert list(s) == [(3, 4), (3, 5)] and len(s) == 6
    assert list(s) == [(3, i) for i in range(6)]  # the skip applies once
    r0, r1 = ResumableSampler(5, 0, 2), ResumableSampler(5, 1, 2)
    assert [i for _, i in r0] == [0, 2, 4] and [i for _, i in r1] == [1, 3]
    with pytest.raises(ValueError, match="n_items must be in"):
        s.skip(7)
