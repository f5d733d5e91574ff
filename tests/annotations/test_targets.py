"""Training targets: heatmap peaks at the true centre voxels, size map reproduces the diameters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lungcad.annotations.consensus import consensus_nodules
from lungcad.annotations.lidc_xml import find_lidc_xml, read_lidc_xml
from lungcad.annotations.masks import BoxMask
from lungcad.annotations.targets import (
    TRIAGE_IGNORE,
    TargetNodule,
    ball_mask,
    build_targets,
    targets_from_consensus,
)
from lungcad.errors import InputError
from lungcad.io import load_ct
from lungcad.preprocess.resample import isotropic_shape
from lungcad.types import BatchKey, Grid


def _grid(shape: tuple[int, int, int], spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Grid:
    """Geometry only: targets need no image."""
    return Grid(shape, spacing, origin)


def _peaks(heat: np.ndarray) -> list[tuple[int, ...]]:
    local_max = (heat == ndimage.maximum_filter(heat, size=3)) & (heat > 0.5)
    return sorted(tuple(int(v) for v in p) for p in np.argwhere(local_max))


def test_docstring_worked_example() -> None:
    grid = _grid((12, 12, 12))
    t = build_targets([TargetNodule((5.4, 6.0, 6.0), 10.0, False)], grid)
    heat = t[BatchKey.HEATMAP]
    assert heat[6, 6, 5] == 1.0
    sigma = 1.25  # max(0.25 x 5 mm, 1 mm)
    assert heat[6, 6, 4] == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-6)
    assert heat[6, 6, 4] == heat[6, 6, 6]
    assert heat[6, 7, 6] == pytest.approx(math.exp(-2 / (2 * sigma**2)), rel=1e-6)


def test_peaks_sit_at_the_true_centres_and_size_reproduces_diameters() -> None:
    # Anisotropic grid (2.5 mm slices, 0.7 mm pixels) with an offset origin.
    grid = _grid((24, 64, 64), spacing=(2.5, 0.7, 0.7), origin=(-20.0, 10.0, -100.0))
    nodules = [
        TargetNodule((-5.3, 25.1, -80.2), 8.0, True),
        TargetNodule((10.0, 40.0, -60.0), 4.5, False),
        TargetNodule((-15.0, 50.0, -50.0), 3.0, False),
    ]
    t = build_targets(nodules, grid)
    centres = [tuple(int(v) for v in np.floor(grid.world_to_voxel(n.center_xyz_mm) + 0.5)) for n in nodules]
    # (-80.2 + 100) / 2.5 = 7.92 -> 8; (25.1 - 10) / 0.7 = 21.57 -> 22; (-5.3 + 20) / 0.7 = 21 -> 21.
    assert centres[0] == (8, 22, 21)
    assert _peaks(t[BatchKey.HEATMAP]) == sorted(centres)
    assert all(t[BatchKey.HEATMAP][c] == 1.0 for c in centres)
    assert [float(t[BatchKey.SIZE][c]) for c in centres] == [8.0, 4.5, 3.0]
    assert np.count_nonzero(t[BatchKey.SIZE]) == 3
    np.testing.assert_array_equal(np.argwhere(t[BatchKey.CENTER_MASK]), np.argwhere(t[BatchKey.SIZE] > 0))
    assert [int(t[BatchKey.TRIAGE][c]) for c in centres] == [1, 0, 0]
    assert {int(v) for v in np.unique(t[BatchKey.TRIAGE])} == {TRIAGE_IGNORE, 0, 1}
    # Segmentation: a ball of each diameter; every ball voxel carries its nodule's triage label.
    seg = t[BatchKey.SEGMENTATION].astype(bool)
    np.testing.assert_array_equal(seg, t[BatchKey.TRIAGE] >= 0)
    assert t[BatchKey.SEGMENTATION].dtype == np.uint8 and t[BatchKey.HEATMAP].dtype == np.float32


def test_ball_mask_counts() -> None:
    grid = _grid((9, 9, 9))
    # Radius 1 mm around a voxel centre: the voxel and its 6 face neighbours.
    assert ball_mask(grid, (4.0, 4.0, 4.0), 2.0).count() == 7
    # Radius 1.5 mm: also the 12 edge neighbours (sqrt 2 = 1.41), not the 8 corners (sqrt 3 = 1.73).
    assert ball_mask(grid, (4.0, 4.0, 4.0), 3.0).count() == 19


def test_given_mask_overrides_the_ball_and_larger_nodule_wins_a_shared_centre() -> None:
    grid = _grid((5, 5, 5))
    box = BoxMask((1, 1, 1), np.ones((1, 1, 2), bool))
    t = build_targets(
        [TargetNodule((2.0, 2.0, 2.0), 6.0, True, mask=box), TargetNodule((2.2, 2.0, 2.0), 4.0, False)], grid
    )
    assert t[BatchKey.SIZE][2, 2, 2] == 6.0 and int(t[BatchKey.TRIAGE][2, 2, 2]) == 1
    assert t[BatchKey.SEGMENTATION][1, 1, 1:3].all()
    assert int(t[BatchKey.TRIAGE][1, 1, 1]) == 1


def test_centre_outside_the_grid_leaves_no_size() -> None:
    t = build_targets([TargetNodule((-3.0, 2.0, 2.0), 10.0, False)], _grid((5, 5, 5)))
    assert t[BatchKey.SIZE].sum() == 0 and t[BatchKey.CENTER_MASK].sum() == 0
    assert 0 < t[BatchKey.HEATMAP].max() < 1 and t[BatchKey.SEGMENTATION].sum() > 0


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match=r"nodule diameter must be > 0 mm, got 0.0"):
        build_targets([TargetNodule((1.0, 1.0, 1.0), 0.0, False)], _grid((3, 3, 3)))
    with pytest.raises(InputError, match=r"sigma_factor and min_sigma_mm must be > 0"):
        build_targets([], _grid((3, 3, 3)), sigma_factor=0.0)


def test_real_nodule_in_the_1mm_grid(bundled_slab_0001: Path) -> None:
    volume = load_ct(bundled_slab_0001)
    nodules = consensus_nodules(read_lidc_xml(find_lidc_xml(bundled_slab_0001)), volume)
    grid = _grid(isotropic_shape(volume, 1.0), origin=volume.origin_xyz_mm)
    t = targets_from_consensus(nodules, volume, grid)
    (n,) = nodules
    (peak,) = _peaks(t[BatchKey.HEATMAP])
    assert np.all(np.abs(np.asarray(peak) - grid.world_to_voxel(n.center_xyz_mm)) <= 0.5)
    assert float(t[BatchKey.SIZE][peak]) == pytest.approx(n.diameter_mm, rel=1e-6)
    # The consensus mask (6709 mm^3 at 2.5 x 0.70 x 0.70 mm) keeps its volume within 2 % at 1 mm.
    assert int(t[BatchKey.SEGMENTATION].sum()) == pytest.approx(n.volume_mm3, rel=0.02)
