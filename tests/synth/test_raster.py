"""Numerics of the rasteriser, the interpolation, the z blur and the noise calibration, on small cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lungcad.synth.acquisition import Acquisition, _gauss_taps, apply_acquisition, blur_z
from lungcad.synth.geometry import BodyFrame, ScanGeometry
from lungcad.synth.raster import mix_into, render_capsules, splat_segments
from lungcad.synth.thorax import upsample_linear
from lungcad.types import CTVolume


def _grid(shape=(40, 60, 60), spacing=(1.25, 0.7, 0.7)) -> CTVolume:
    return CTVolume(np.zeros(shape, np.float32), spacing)


def test_capsule_volume_matches_geometry() -> None:
    vol = _grid()
    buf = np.zeros(vol.shape, np.float32)
    a, b, r = np.array([[12.0, 12.0, 12.0]]), np.array([[36.0, 30.0, 27.0]]), 3.0
    render_capsules(vol, buf, a, b, np.array([r]), np.array([r]))
    length = float(np.linalg.norm(b - a))
    exact = (np.pi * r * r * length + 4 / 3 * np.pi * r**3) / np.prod(vol.spacing_zyx_mm)
    assert buf.sum() == pytest.approx(exact, rel=0.03)
    assert buf.max() == 1.0 and buf.min() == 0.0
    # On the axis the voxel is full; 2 radii away it is empty.
    mid = np.round(((a + b) / 2 / vol.spacing_zyx_mm)[0]).astype(int)
    assert buf[tuple(mid)] == 1.0


def test_capsule_joints_do_not_double_count() -> None:
    """Two collinear halves give the same occupancy as the whole capsule (max, not sum).

    Only the end cap of one half differs slightly (its surface normal is taken from the end point), by
    less than 1% of a voxel.
    """
    vol = _grid()
    whole, halves = np.zeros(vol.shape, np.float32), np.zeros(vol.shape, np.float32)
    a, m, b = np.array([10.0, 10, 10]), np.array([20.0, 20, 20]), np.array([30.0, 30, 30])
    render_capsules(vol, whole, a[None], b[None], np.array([2.0]), np.array([2.0]))
    render_capsules(vol, halves, np.stack([a, m]), np.stack([m, b]), np.full(2, 2.0), np.full(2, 2.0))
    np.testing.assert_allclose(halves, whole, rtol=0, atol=0.01)
    assert halves.sum() == pytest.approx(whole.sum(), rel=1e-4)


def test_splat_conserves_tube_volume_and_mix_blends() -> None:
    vol = _grid()
    buf = np.zeros(vol.shape, np.float32)
    a, b, r = np.array([[10.0, 10, 10]]), np.array([[30.0, 25, 31]]), 0.25
    touched = splat_segments(vol, buf, a, b, np.array([r]))
    tube = np.pi * r * r * np.linalg.norm(b - a) / np.prod(vol.spacing_zyx_mm)
    assert buf.sum() == pytest.approx(tube, rel=1e-5)
    vol.hu[...] = -850.0
    mix_into(vol, buf, touched, 40.0)
    assert not buf.any()  # the scratch buffer is cleared for the next structure
    added = float((vol.hu + 850.0).sum()) / 890.0
    assert added == pytest.approx(tube, rel=1e-4)


def test_upsample_linear_reproduces_a_ramp_exactly() -> None:
    n, step = 11, 2
    coarse = np.arange(0, 12, step, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    fine = upsample_linear(coarse, step, n, 0)
    np.testing.assert_array_equal(fine[:, 0], np.arange(n, dtype=np.float32))


def test_blur_z_equals_scipy_correlate() -> None:
    a = np.random.default_rng(0).random((25, 4, 5)).astype(np.float32)
    b = a.copy()
    blur_z(b, 1.3)
    ref = ndimage.correlate1d(a, _gauss_taps(1.3).astype(np.float32), axis=0, mode="nearest")
    np.testing.assert_allclose(b, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pixel", [0.7, 1.3])
def test_noise_std_is_calibrated(pixel: float) -> None:
    """In a uniform region the final noise std is the sampled one (within sampling error)."""
    shape = (24, 160, 160)
    vol = CTVolume(np.zeros(shape, np.float32), (1.0, pixel, pixel))
    geom = ScanGeometry(
        shape,
        vol.spacing_zyx_mm,
        (0.0, 0.0, 0.0),
        np.eye(3),
        1.25,
        10 * 160 * pixel,
        BodyFrame(np.zeros(3), np.eye(3)),
        (0.0, 23.0),
    )
    acq = Acquisition(25.0, "STANDARD", 0.9, 1.25, 120.0, 100.0, None, ())
    apply_acquisition(vol, geom, acq, np.random.default_rng(0))
    assert float(vol.hu[4:-4, 10:-10, 10:-10].std()) == pytest.approx(25.0, rel=0.06)
    assert abs(float(vol.hu.mean())) < 1.0
