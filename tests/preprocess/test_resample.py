from __future__ import annotations

import numpy as np
import pytest

from lungcad.errors import InputError
from lungcad.preprocess.resample import isotropic_grid, isotropic_shape, resample_isotropic, resample_onto
from lungcad.types import CTVolume


def _marker_volume(direction: np.ndarray) -> tuple[CTVolume, np.ndarray]:
    """A 1-voxel-wide bright cross-shaped marker at a known world point, anisotropic voxels, odd origin."""
    hu = np.full((30, 50, 60), -1000.0, dtype=np.float32)
    vol = CTVolume(hu, (2.5, 0.7, 0.8), origin_xyz_mm=(-123.4, 56.7, -310.0), direction=direction)
    marker_vox = np.array([12.0, 21.0, 33.0])
    # a blob of 3 x 7 x 7 voxels (7.5 x 4.9 x 5.6 mm) so that 1 mm sampling still hits its interior
    z, y, x = marker_vox.astype(int)
    hu[z - 1 : z + 2, y - 3 : y + 4, x - 3 : x + 4] = 500.0
    return vol, vol.voxel_to_world(marker_vox)


@pytest.mark.parametrize("angle_deg", [0.0, 20.0])
def test_marker_stays_at_its_world_position(angle_deg: float) -> None:
    a = np.deg2rad(angle_deg)
    direction = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    vol, world = _marker_volume(direction)
    iso = resample_isotropic(vol, 1.0)
    assert iso.spacing_zyx_mm == (1.0, 1.0, 1.0)
    assert iso.origin_xyz_mm == vol.origin_xyz_mm
    np.testing.assert_array_equal(iso.direction, vol.direction)
    z, y, x = np.round(iso.world_to_voxel(world)).astype(int)
    assert iso.hu[z, y, x] == pytest.approx(500.0)
    # the centre of mass of the resampled blob is the marker's world position (within half a voxel)
    idx = np.argwhere(iso.hu > 0).astype(float)
    weights = iso.hu[iso.hu > 0] + 1000.0
    com = (idx * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose(iso.voxel_to_world(com), world, atol=0.5)


def test_isotropic_shape_hand_computed() -> None:
    vol = CTVolume(np.zeros((133, 512, 512)), (2.5, 0.703125, 0.703125))
    # 132 * 2.5 = 330 mm -> 331 samples; 511 * 0.703125 = 359.3 mm -> 360 samples
    assert isotropic_shape(vol, 1.0) == (331, 360, 360)


def test_identity_resampling_is_exact() -> None:
    hu = np.random.default_rng(0).normal(0, 100, (5, 6, 7)).astype(np.float32)
    vol = CTVolume(hu, (1.0, 1.0, 1.0), (3.0, 4.0, 5.0))
    np.testing.assert_array_equal(resample_isotropic(vol, 1.0).hu, hu)


def test_linear_interpolation_value() -> None:
    hu = np.zeros((2, 2, 2), dtype=np.float32)
    hu[1] = 100.0
    vol = CTVolume(hu, (2.0, 1.0, 1.0))
    iso = resample_isotropic(vol, 1.0)
    assert iso.shape == (3, 2, 2)
    np.testing.assert_allclose(iso.hu[:, 0, 0], [0.0, 50.0, 100.0], rtol=0, atol=1e-4)


def test_mask_nearest_neighbour() -> None:
    vol = CTVolume(np.zeros((4, 4, 4)), (2.0, 2.0, 2.0))
    mask = np.zeros((4, 4, 4), dtype=np.uint8)
    mask[1:3, 1:3, 1:3] = 1
    out = resample_onto(vol, isotropic_grid(vol, 1.0), array=mask, order=0, fill_value=0)
    assert out.shape == (7, 7, 7) and out.dtype == np.uint8 and set(np.unique(out)) == {0, 1}


def test_bad_spacing() -> None:
    with pytest.raises(InputError, match="spacing_mm must be > 0, got 0"):
        resample_isotropic(CTVolume(np.zeros((2, 2, 2)), (1, 1, 1)), 0)
