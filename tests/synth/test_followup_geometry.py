"""The body frame with an inspiration scale (follow-up current scans): hand-checked maps."""

from __future__ import annotations

import numpy as np

from lungcad.synth.followup import PoseDraw, moved_geometry, scaled_spec
from lungcad.synth.geometry import BodyFrame, body_shift

from .conftest import small_config


def _frame() -> BodyFrame:
    # roll 90 degrees (body x -> world y), shear tx = 0.1, scale (2, 1, 0.5), centre (10, 20, 30)
    a = np.array([[0.0, -1.0, 0.1], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return BodyFrame(np.array([10.0, 20.0, 30.0]), a, np.array([2.0, 1.0, 0.5]))


def test_scaled_frame_by_hand() -> None:
    f = _frame()
    # body (1, 2, 4): scaled (2, 2, 2); A @ (2, 2, 2) = (-2 + 0.2, 2, 2); + centre
    np.testing.assert_allclose(f.to_world(np.array([1.0, 2.0, 4.0])), [8.2, 22.0, 32.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.to_body(np.array([8.2, 22.0, 32.0])), [1.0, 2.0, 4.0], rtol=0, atol=1e-12)
    h = f.affine()
    np.testing.assert_allclose(h @ [1.0, 2.0, 4.0, 1.0], [8.2, 22.0, 32.0, 1.0], rtol=0, atol=1e-12)


def test_body_shift_with_scale_matches_to_body() -> None:
    """A fixed world (x, y) seen at body z: the slice-0 body coordinates plus ``body_shift``."""
    f = _frame()
    world = np.array([3.0, -7.0, f.centre_xyz_mm[2]])  # on the slice at body z = 0
    b0 = f.to_body(world)
    for bz in (-40.0, 12.5):
        w = world.copy()
        w[2] = f.to_world(np.array([0.0, 0.0, bz]))[2]
        want = f.to_body(w)
        got = b0[:2] + body_shift(f, np.array([bz]))[0]
        np.testing.assert_allclose(got, want[:2], rtol=0, atol=1e-12)
        assert want[2] == bz


def test_unscaled_frame_is_unchanged() -> None:
    a = np.array([[0.6, -0.8, 0.02], [0.8, 0.6, -0.01], [0.0, 0.0, 1.0]])
    f = BodyFrame(np.array([1.0, 2.0, 3.0]), a)
    p = np.array([[4.0, -5.0, 6.0]])
    assert np.array_equal(f.to_world(p), p @ a.T + f.centre_xyz_mm)  # bit for bit the old formula
    np.testing.assert_array_equal(body_shift(f, np.array([2.0])), -np.outer([2.0], a[:2, :2].T @ a[:2, 2]))


def test_moved_geometry_slices_and_transform() -> None:
    from lungcad.synth.scan import draw_patient

    geom = draw_patient(small_config(), 0).geom
    pose = PoseDraw(
        roll_deg=3.0, tilt_deg=(0.5, -0.5), shift_mm=(4.0, -3.0, 6.0), scale_xyz=(1.02, 0.99, 1.04)
    )
    moved = moved_geometry(geom, pose)
    assert moved.shape_zyx == geom.shape_zyx and moved.origin_xyz_mm == geom.origin_xyz_mm
    # body z of every slice lands on that slice's world z
    zs = moved.frame.to_world(np.stack([np.zeros(3), np.zeros(3), moved.body_z_of_slices()[[0, 5, -1]]], 1))
    k = np.array([0, 5, geom.shape_zyx[0] - 1])
    np.testing.assert_allclose(zs[:, 2], geom.origin_xyz_mm[2] + k * geom.spacing_zyx_mm[0], atol=1e-9)
    assert moved.body_z_step_mm() == geom.spacing_zyx_mm[0] / 1.04
    # the roll is 3 degrees about z
    rel = moved.frame.matrix[:2, :2] @ geom.frame.matrix[:2, :2].T
    assert np.isclose(np.degrees(np.arctan2(rel[1, 0], rel[0, 0])), 3.0, rtol=0, atol=1e-9)


def test_scaled_spec_scales_every_length() -> None:
    from lungcad.synth.followup import generate_followup_pair

    spec = next(f.prior for f in generate_followup_pair(small_config(), 0).fates if f.prior is not None)
    big = scaled_spec(spec, 1.5)
    assert big.diameter_mm == spec.diameter_mm * 1.5
    np.testing.assert_array_equal(big.semi_axes, spec.semi_axes * 1.5)
    np.testing.assert_array_equal(big.centre, spec.centre)
    assert big.texture == spec.texture and big.hu == spec.hu
