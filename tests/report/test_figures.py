"""Report figures: orientation in the patient frame, true-size scale, golden images with a tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lungcad.report.figures.mip import coronal_mip
from lungcad.report.figures.planes import LETTERS, NORMAL_AXIS, Plane, PlaneView, sample_plane
from tests.report.figure_cases import GOLDEN_DIR, NAMES, TOLERANCE, golden_pixels, phantom_scene, render_all


@pytest.mark.parametrize("plane", list(Plane))
def test_patient_right_is_image_left_and_superior_anterior_up(plane: Plane) -> None:
    """A bright point at the patient's right (LPS -x), anterior (-y) and superior (+z) of the centre shows
    left / up in the views whose letters say so (R left; A top in axial; S top in coronal and sagittal)."""
    from lungcad.types import CTVolume

    hu = np.full((40, 60, 60), -1000.0, np.float32)
    vol = CTVolume(hu, (1.0, 1.0, 1.0), (-30.0, -30.0, -20.0))
    target = np.array([-10.0, -10.0, 10.0])  # right, anterior, superior of the world origin
    z, y, x = np.rint(vol.world_to_voxel(target)).astype(int)
    hu[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = 1000.0
    centre = np.zeros(3)
    centre[NORMAL_AXIS[plane]] = target[NORMAL_AXIS[plane]]  # the plane through the point, centred at 0
    view = PlaneView(plane, tuple(float(v) for v in centre), 25.0, 0.5)
    img = sample_plane(vol.hu, vol.grid, view)
    row, col = np.unravel_index(np.argmax(img), img.shape)
    left, right, top, bottom = LETTERS[plane]
    middle = view.size / 2
    if plane is Plane.SAGITTAL:
        assert (left, right) == ("A", "P") and col < middle - 10  # anterior on the image left
    else:
        assert (left, right) == ("R", "L") and col < middle - 10  # patient's right on the image left
    assert (
        top in ("A", "S") and row < middle - 10
    )  # anterior (axial) / superior (coronal, sagittal) at the top


def test_flipped_direction_gives_the_same_planes() -> None:
    """Same anatomy stored with x reversed: every sampled plane and the MIP are identical."""
    a, la, shown = phantom_scene()
    b, lb, _ = phantom_scene(flip_x=True)
    for plane in Plane:
        view = PlaneView(plane, shown[0].finding.center_xyz_mm, 20.0, 0.25)
        np.testing.assert_allclose(
            sample_plane(a.hu, a.grid, view), sample_plane(b.hu, b.grid, view), atol=1e-3
        )
        np.testing.assert_array_equal(
            sample_plane(la, a.grid, view, order=0, fill=0), sample_plane(lb, b.grid, view, order=0, fill=0)
        )
    img_a, ext_a = coronal_mip(a, None)
    img_b, ext_b = coronal_mip(b, None)
    np.testing.assert_array_equal(img_a, img_b)
    np.testing.assert_allclose(ext_a, ext_b)


def test_scale_bar_and_pixels_are_true_to_millimetres() -> None:
    """10 mm in the world is 10 / pixel_mm display pixels, and the plane's pixel centres are where the
    docstring's worked example says."""
    view = PlaneView(Plane.AXIAL, (10.0, -20.0, -100.0), 20.0, 0.5)
    assert view.size == 80
    np.testing.assert_allclose(view.world_points()[0, 0], (-9.75, -39.75, -100.0))
    c0 = view.to_pixel((10.0, -20.0, -100.0))
    c1 = view.to_pixel((20.0, -20.0, -100.0))
    assert c1[0] - c0[0] == pytest.approx(10.0 / 0.5)
    assert view.position_caption() == "z -100.0 mm"


def test_figure_goldens(tmp_path: Path) -> None:
    """Key image, MIP and 3-D view of the seeded phantom match the committed goldens (mean |diff| <=
    TOLERANCE on the 0-255 scale); rewrite with ``python -m tests.report.update_figures``."""
    paths = render_all(tmp_path)
    for name in NAMES:
        ref_path = GOLDEN_DIR / f"{name}.png"
        assert ref_path.is_file(), f"missing golden {ref_path}: run python -m tests.report.update_figures"
        ref = np.asarray(Image.open(ref_path).convert("RGB")).astype(int)
        new = golden_pixels(paths[name]).astype(int)
        assert new.shape == ref.shape, f"{name}: size {new.shape} != golden {ref.shape}"
        diff = float(np.abs(new - ref).mean())
        assert diff <= TOLERANCE, f"{name}: mean absolute difference {diff:.2f} > {TOLERANCE}"


def test_golden_tolerance_catches_a_moved_contour(tmp_path: Path) -> None:
    """The tolerance is tight enough: the key image of the *other* nodule differs by more than it."""
    from lungcad.report.figures import finding_views

    volume, labels, shown = phantom_scene()
    path = finding_views.render_finding(shown[1], volume, labels, tmp_path / "other.png")
    ref = np.asarray(Image.open(GOLDEN_DIR / "key_image.png").convert("RGB")).astype(int)
    other = golden_pixels(path).astype(int)
    if other.shape == ref.shape:
        assert float(np.abs(other - ref).mean()) > TOLERANCE


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_masked_mip_equals_the_full_resolution_mask(axis: int) -> None:
    """The run-wise MIP is exactly the max over the nearest-neighbour upsampled lung mask."""
    from lungcad.preprocess.lung_mask import segment_lungs
    from lungcad.report.figures import mip

    volume, _, _ = phantom_scene()
    lungs = segment_lungs(volume)
    full = mip._full_lung_mask(lungs, volume.shape)
    reference = np.where(full, volume.hu, np.float32(-1000.0)).max(axis=axis)
    np.testing.assert_array_equal(mip._masked_max(volume.hu, lungs, axis), reference)
