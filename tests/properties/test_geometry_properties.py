"""World <-> voxel conversions of ``CTVolume`` for random geometry (oblique, mirrored, non-zero origin).

Sign conventions: spacing is always positive (DICOM PixelSpacing and ITK spacing are); a flipped axis is
expressed by the direction matrix, whose column ``i`` is the world unit vector of voxel axis ``i``
(x, y, z).  A direction with a negated column and the origin moved to the other end of that axis describes
the same voxels in mirrored order: the same world point maps to index ``n - 1 - i`` on that axis.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given
from hypothesis import strategies as st

from lungcad.errors import InputError
from lungcad.types import CTVolume
from tests.properties.settings import property_settings

spacings = st.tuples(*[st.floats(0.1, 10.0, allow_nan=False) for _ in range(3)])
origins = st.tuples(*[st.floats(-1000.0, 1000.0, allow_nan=False) for _ in range(3)])
shapes = st.tuples(*[st.integers(1, 6) for _ in range(3)])


@st.composite
def directions(draw: st.DrawFn) -> np.ndarray:
    """A random orthonormal 3x3 matrix (QR of a random matrix), with determinant +1 or -1 as drawn."""
    seed = draw(st.integers(0, 2**32 - 1))
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))  # a unique Q (Haar-distributed)
    want = draw(st.sampled_from([1.0, -1.0]))
    if np.sign(np.linalg.det(q)) != want:
        q[:, 0] = -q[:, 0]
    return q


def _volume(shape, spacing_zyx, origin_xyz, direction) -> CTVolume:  # noqa: ANN001 - strategy values
    return CTVolume(np.zeros(shape, dtype=np.float32), spacing_zyx, origin_xyz, direction)


@property_settings(100)
@given(shape=shapes, spacing=spacings, origin=origins, direction=directions(), data=st.data())
def test_voxel_world_round_trip(shape, spacing, origin, direction, data) -> None:  # noqa: ANN001
    vol = _volume(shape, spacing, origin, direction)
    assert np.linalg.det(vol.direction) == pytest.approx(np.linalg.det(direction))
    idx = np.asarray(data.draw(st.lists(st.tuples(*[st.floats(-50, 600) for _ in range(3)]), min_size=1)))
    world = vol.voxel_to_world(idx)
    np.testing.assert_allclose(vol.world_to_voxel(world), idx, rtol=0, atol=1e-7)
    pts = np.asarray(data.draw(st.lists(st.tuples(*[st.floats(-2000, 2000) for _ in range(3)]), min_size=1)))
    np.testing.assert_allclose(vol.voxel_to_world(vol.world_to_voxel(pts)), pts, rtol=0, atol=1e-7)
    # one point keeps its shape (3,); many keep (N, 3)
    assert vol.world_to_voxel(pts[0]).shape == (3,) and vol.world_to_voxel(pts).shape == pts.shape


@property_settings(100)
@given(spacing=spacings, origin=origins, direction=directions(), idx=st.tuples(*[st.floats(-5, 50)] * 3))
def test_voxel_to_world_agrees_with_simpleitk(spacing, origin, direction, idx) -> None:  # noqa: ANN001
    """An independent implementation of the DICOM/ITK rule: ITK's continuous index -> physical point."""
    vol = _volume((2, 2, 2), spacing, origin, direction)
    image = sitk.Image(2, 2, 2, sitk.sitkFloat32)
    image.SetSpacing(tuple(reversed(spacing)))  # ITK order is x, y, z
    image.SetOrigin(origin)
    image.SetDirection(tuple(direction.ravel()))  # row-major: ITK's own convention
    expected = image.TransformContinuousIndexToPhysicalPoint(tuple(reversed(idx)))
    np.testing.assert_allclose(vol.voxel_to_world(np.asarray(idx)), expected, rtol=0, atol=1e-8)


@property_settings(100)
@given(
    shape=shapes,
    spacing=spacings,
    origin=origins,
    direction=directions(),
    axis_xyz=st.integers(0, 2),
    data=st.data(),
)
def test_flipped_axis_is_a_direction_column_not_a_negative_spacing(
    shape,
    spacing,
    origin,
    direction,
    axis_xyz,
    data,  # noqa: ANN001
) -> None:
    vol = _volume(shape, spacing, origin, direction)
    axis_zyx = 2 - axis_xyz
    n = shape[axis_zyx]
    flipped_dir = direction.copy()
    flipped_dir[:, axis_xyz] = -flipped_dir[:, axis_xyz]
    # the mirrored grid starts where the original ends: voxel n - 1 along that axis
    last = np.zeros(3)
    last[axis_zyx] = n - 1
    mirrored = _volume(shape, spacing, tuple(vol.voxel_to_world(last)), flipped_dir)
    pts = np.asarray(data.draw(st.lists(st.tuples(*[st.floats(-1500, 1500)] * 3), min_size=1, max_size=20)))
    a, b = vol.world_to_voxel(pts), mirrored.world_to_voxel(pts)
    expected = a.copy()
    expected[:, axis_zyx] = (n - 1) - a[:, axis_zyx]
    np.testing.assert_allclose(b, expected, rtol=0, atol=1e-7)
    # and every voxel centre of one grid is a voxel centre of the other (the same voxels)
    centres = np.argwhere(np.ones(shape, dtype=bool)).astype(np.float64)
    back = mirrored.world_to_voxel(vol.voxel_to_world(centres))
    np.testing.assert_allclose(np.sort(back, axis=0), np.sort(centres, axis=0), rtol=0, atol=1e-7)


@property_settings(30)
@given(spacing=spacings, axis=st.integers(0, 2), direction=directions())
def test_negative_or_zero_spacing_is_refused(spacing, axis, direction) -> None:  # noqa: ANN001
    bad = list(spacing)
    bad[axis] = -bad[axis]
    with pytest.raises(InputError, match="spacing"):
        _volume((2, 2, 2), tuple(bad), (0.0, 0.0, 0.0), direction)
    bad[axis] = 0.0
    with pytest.raises(InputError, match="spacing"):
        _volume((2, 2, 2), tuple(bad), (0.0, 0.0, 0.0), direction)
