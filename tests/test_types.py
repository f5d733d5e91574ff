from __future__ import annotations

import numpy as np
import pytest

from lungcad.errors import InputError
from lungcad.types import CTVolume


def _rotated() -> np.ndarray:
    a = np.deg2rad(30)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def test_world_voxel_hand_computed() -> None:
    vol = CTVolume(np.zeros((4, 5, 6)), spacing_zyx_mm=(2.5, 0.5, 0.7), origin_xyz_mm=(10.0, -20.0, 100.0))
    # voxel (z=2, y=3, x=4) -> x = 10 + 4*0.7, y = -20 + 3*0.5, z = 100 + 2*2.5
    np.testing.assert_allclose(vol.voxel_to_world((2, 3, 4)), [12.8, -18.5, 105.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(vol.world_to_voxel((12.8, -18.5, 105.0)), [2, 3, 4], rtol=0, atol=1e-12)


def test_world_voxel_roundtrip_rotated_many_points() -> None:
    vol = CTVolume(np.zeros((3, 3, 3)), (1.25, 0.8, 0.6), (5.0, 6.0, -7.0), direction=_rotated())
    pts = np.random.default_rng(0).uniform(-50, 50, size=(20, 3))
    np.testing.assert_allclose(vol.voxel_to_world(vol.world_to_voxel(pts)), pts, atol=1e-9)
    # the x voxel axis points along the first direction column
    step = vol.voxel_to_world((0, 0, 1)) - vol.voxel_to_world((0, 0, 0))
    np.testing.assert_allclose(step, 0.6 * _rotated()[:, 0], atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hu": np.zeros((3, 3))}, "3-D"),
        ({"spacing_zyx_mm": (1.0, 0.0, 1.0)}, "positive"),
        ({"spacing_zyx_mm": (1.0, float("nan"), 1.0)}, "positive"),
        ({"direction": np.diag([1.0, 2.0, 1.0])}, "orthonormal"),
        ({"origin_xyz_mm": (0.0, float("inf"), 0.0)}, "finite"),
    ],
)
def test_ctvolume_validation(kwargs: dict, match: str) -> None:
    args = {"hu": np.zeros((2, 2, 2)), "spacing_zyx_mm": (1.0, 1.0, 1.0)} | kwargs
    with pytest.raises(InputError, match=match):
        CTVolume(**args)


def test_crop_keeps_world_coordinates() -> None:
    hu = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    vol = CTVolume(hu, (2.0, 1.0, 0.5), (1.0, 2.0, 3.0), direction=_rotated())
    sub = vol.crop((1, 2, 3), (4, 5, 6))
    world = vol.voxel_to_world((2, 3, 4))
    np.testing.assert_allclose(sub.world_to_voxel(world), [1, 1, 1], atol=1e-9)
    assert sub.hu[1, 1, 1] == hu[2, 3, 4]
