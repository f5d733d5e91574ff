from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lungcad.errors import InputError
from lungcad.types import CTVolume, Grid


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


# --- Grid: geometry without pixels -----------------------------------------------------------------------


def test_grid_hand_computed_and_volume_delegates() -> None:
    """The Grid docstring's example: voxel (2, 3, 4) of spacing (2.5, 0.5, 0.7) -> (12.8, -18.5, 105)."""
    grid = Grid((4, 5, 6), (2.5, 0.5, 0.7), (10.0, -20.0, 100.0))
    np.testing.assert_allclose(grid.voxel_to_world((2, 3, 4)), [12.8, -18.5, 105.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(grid.world_to_voxel((12.8, -18.5, 105.0)), [2, 3, 4], rtol=0, atol=1e-12)
    assert grid.spacing_xyz_mm == (0.7, 0.5, 2.5)
    vol = CTVolume(np.zeros((4, 5, 6)), (2.5, 0.5, 0.7), (10.0, -20.0, 100.0))
    assert vol.grid == grid and vol.shape == grid.shape == (4, 5, 6)
    pts = np.random.default_rng(1).uniform(-50, 50, size=(7, 3))
    np.testing.assert_array_equal(vol.world_to_voxel(pts), grid.world_to_voxel(pts))  # one conversion
    np.testing.assert_array_equal(vol.voxel_to_world(pts), grid.voxel_to_world(pts))


def test_grid_normalises_and_freezes_its_values() -> None:
    direction = _rotated()
    grid = Grid(np.array([3, 4, 5]), np.array([1, 2, 3]), [0, 1, 2], direction)  # type: ignore[arg-type]
    assert grid.shape == (3, 4, 5) and all(type(s) is int for s in grid.shape)
    assert grid.spacing_zyx_mm == (1.0, 2.0, 3.0) and grid.origin_xyz_mm == (0.0, 1.0, 2.0)
    assert not grid.direction.flags.writeable
    assert direction.flags.writeable  # the caller's array is copied, not frozen in place
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.shape = (1, 1, 1)  # type: ignore[misc]


def test_grid_equality_and_hash_compare_values() -> None:
    a = Grid((2, 3, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    b = Grid((2, 3, 4), (1, 1, 1), (0, 0, 0))  # type: ignore[arg-type]
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Grid((2, 3, 5), (1.0, 1.0, 1.0))
    assert a != Grid((2, 3, 4), (1.0, 1.0, 1.0), direction=_rotated())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (3, 3)}, r"Grid.shape must be three non-negative integers"),
        ({"shape": (3, -1, 3)}, r"Grid.shape must be three non-negative integers"),
        ({"shape": (3, 2.5, 3)}, r"Grid.shape must be three non-negative integers"),
        ({"shape": None}, r"Grid.shape must be three non-negative integers"),
        ({"spacing_zyx_mm": (1.0, 0.0, 1.0)}, r"spacing_zyx_mm must be three positive finite numbers"),
        ({"spacing_zyx_mm": 1.0}, r"spacing_zyx_mm must be three positive finite numbers, got 1.0"),
        ({"origin_xyz_mm": (0.0, float("nan"), 0.0)}, r"origin_xyz_mm must be three finite numbers"),
        ({"direction": np.eye(2)}, r"direction must be a 3x3 matrix, got shape \(2, 2\)"),
        ({"direction": np.diag([1.0, 2.0, 1.0])}, r"direction must be orthonormal"),
    ],
)
def test_grid_validation(kwargs: dict, match: str) -> None:
    args = {"shape": (2, 2, 2), "spacing_zyx_mm": (1.0, 1.0, 1.0)} | kwargs
    with pytest.raises(InputError, match=match):
        Grid(**args)


def test_grid_crop_keeps_world_positions() -> None:
    grid = Grid((4, 5, 6), (2.0, 1.0, 0.5), (1.0, 2.0, 3.0), _rotated())
    sub = grid.crop((1, 2, 3), (4, 5, 6))
    assert sub.shape == (3, 3, 3) and sub.spacing_zyx_mm == grid.spacing_zyx_mm
    np.testing.assert_allclose(sub.voxel_to_world((1, 1, 1)), grid.voxel_to_world((2, 3, 4)), atol=1e-12)
    vol = CTVolume(np.zeros((4, 5, 6)), (2.0, 1.0, 0.5), (1.0, 2.0, 3.0), _rotated())
    assert vol.crop((1, 2, 3), (4, 5, 6)).grid == sub  # the volume's crop is the grid's crop


def test_ctvolume_keeps_its_constructor_and_builds_on_a_grid() -> None:
    vol = CTVolume(np.ones((2, 3, 4), np.float64), (1.0, 2.0, 3.0), (4.0, 5.0, 6.0), np.eye(3))
    assert vol.hu.dtype == np.float32 and vol.spacing_zyx_mm == vol.grid.spacing_zyx_mm == (1.0, 2.0, 3.0)
    assert vol.direction is vol.grid.direction and vol.origin_xyz_mm == (4.0, 5.0, 6.0)
    again = CTVolume.on_grid(np.zeros((2, 3, 4)), vol.grid, vol.metadata)
    assert again.grid == vol.grid and again.metadata is vol.metadata
    with pytest.raises(InputError, match=r"array shape \(2, 3\) does not match the grid's \(2, 3, 4\)"):
        CTVolume.on_grid(np.zeros((2, 3)), vol.grid)
    moved = dataclasses.replace(vol, origin_xyz_mm=(0.0, 0.0, 0.0))  # the grid follows the fields
    assert moved.grid.origin_xyz_mm == (0.0, 0.0, 0.0)
