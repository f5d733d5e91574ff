from __future__ import annotations

import numpy as np
import pytest

from lungcad.config import PreprocessConfig
from lungcad.preprocess.lung_mask import segment_lungs
from lungcad.preprocess.pipeline import preprocess_ct
from lungcad.preprocess.qa import Status, robust_noise_std, run_qa
from lungcad.types import CTVolume, SliceReport
from tests.conftest import make_phantom


def test_lung_mask_finds_both_cavities_not_outside_air(phantom: CTVolume) -> None:
    lungs = segment_lungs(phantom)
    assert lungs.factors == (1, 1, 1)  # 4 mm voxels are already coarser than the working grid
    truth = phantom.hu < -500
    outside = ~lungs.body
    assert lungs.n_components == 2
    assert not (lungs.mask & outside).any()
    inside_truth = truth & lungs.body
    dice = 2 * (lungs.mask & inside_truth).sum() / (lungs.mask.sum() + inside_truth.sum())
    assert dice > 0.9


def test_juxtapleural_blob_is_inside_the_mask() -> None:
    vol = make_phantom(shape=(40, 96, 96), spacing_zyx_mm=(2.0, 3.0, 3.0))
    hu = vol.hu.copy()
    # a 6 mm soft-tissue nodule on the lateral wall of the left cavity (x ~ 0.15 nx)
    z, y, x = np.ogrid[:40, :96, :96]
    # touching the wall at x = 14.4 voxels from inside the cavity, like a real juxtapleural nodule
    blob = (z - 20) ** 2 / 9 + (y - 48) ** 2 / 9 + (x - 17) ** 2 / 9 <= 1
    hu[blob] = 30.0
    lungs = segment_lungs(CTVolume(hu, vol.spacing_zyx_mm))
    assert lungs.factors == (1, 1, 1)
    # the centre and most of the nodule are lung (its rim on the wall side stays chest wall)
    assert lungs.mask[20, 48, 17]
    assert lungs.mask[blob].mean() > 0.75


def test_empty_lung_mask_fails_qa() -> None:
    hu = np.full((10, 32, 32), 40.0, dtype=np.float32)  # a block of tissue, no air
    vol = CTVolume(hu, (2.0, 1.0, 1.0))
    report = run_qa(vol, segment_lungs(vol), PreprocessConfig())
    assert report.get("lung_coverage").status is Status.FAIL
    assert report.verdict is Status.FAIL


def test_noise_estimate_hand_checked() -> None:
    rng = np.random.default_rng(3)
    hu = rng.normal(0, 25.0, (4, 64, 64)).astype(np.float32)
    est = robust_noise_std(hu, np.ones_like(hu, dtype=bool))
    assert abs(est - 25.0) < 1.0


def test_qa_flags_gaps_thickness_and_tilt(phantom: CTVolume) -> None:
    import dataclasses

    rep = SliceReport(
        n_files=40,
        n_slices_read=40,
        duplicates_dropped=1,
        positions_mm=(),
        median_step_mm=2.5,
        max_step_mm=5.0,
        n_gaps=1,
        nonuniform=True,
        gantry_tilt_deg=12.0,
        padding_fraction=0.0,
    )
    meta = dataclasses.replace(phantom.metadata, slice_report=rep, slice_thickness_mm=3.0)
    vol = CTVolume(phantom.hu, phantom.spacing_zyx_mm, phantom.origin_xyz_mm, metadata=meta)
    lungs = segment_lungs(vol)
    report = run_qa(vol, lungs, PreprocessConfig())
    assert report.get("missing_slices").status is Status.FAIL
    assert report.get("slice_thickness").status is Status.WARN
    assert report.get("gantry_tilt").status is Status.WARN
    assert report.get("duplicate_slices").value == 1
    relaxed = run_qa(vol, lungs, PreprocessConfig(allow_gaps=True))
    assert relaxed.get("missing_slices").status is Status.WARN


def test_metal_detected(phantom: CTVolume) -> None:
    hu = phantom.hu.copy()
    hu[18:20, 30:32, 30:32] = 3071.0  # 8 voxels x 2.5*4*4 mm3 = 0.32 ml of metal
    vol = CTVolume(hu, phantom.spacing_zyx_mm)
    report = run_qa(vol, segment_lungs(vol), PreprocessConfig())
    assert report.get("metal_artefact").status is Status.WARN


def test_pipeline_crops_and_keeps_geometry(phantom: CTVolume) -> None:
    pre = preprocess_ct(phantom)
    assert pre.volume.spacing_zyx_mm == (1.0, 1.0, 1.0)
    assert pre.image.dtype == np.float32 and 0.0 <= pre.image.min() and pre.image.max() <= 1.0
    assert pre.lung_mask.shape == pre.image.shape
    # a lung voxel of the original maps to a lung voxel of the crop
    world = phantom.voxel_to_world((20, 32, 19))  # centre of the left cavity
    z, y, x = np.round(pre.volume.world_to_voxel(world)).astype(int)
    assert pre.lung_mask[z, y, x]
    assert set(pre.timings_s) == {"lung_mask", "qa", "resample", "normalise"}


def test_coarse_grid_geometry_and_full_mask() -> None:
    vol = make_phantom(shape=(20, 120, 120), spacing_zyx_mm=(2.5, 0.8, 0.8))
    lungs = segment_lungs(vol)
    assert lungs.factors == (1, 3, 3)  # 2.5 mm / 0.8 mm -> stride 3 in-plane
    assert lungs.grid.spacing_zyx_mm == pytest.approx((2.5, 2.4, 2.4))
    # coarse voxel (k, i, j) is original voxel (k, 3i, 3j): same world point
    np.testing.assert_allclose(lungs.grid.voxel_to_world((5, 7, 9)), vol.voxel_to_world((5, 21, 27)))
    full = lungs.full_mask()
    assert full.shape == vol.shape and full[10, 60, 36] == lungs.mask[10, 20, 12]
    (z0, y0, x0), (z1, y1, x1) = lungs.bbox()
    assert full[z0:z1, y0:y1, x0:x1].sum() == full.sum()


def test_mediastinum_between_touching_lungs_is_not_lung() -> None:
    """Lungs that meet in front of and behind the heart enclose it in-plane: it must stay out of the mask."""
    shape = (30, 96, 96)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = ((y - 48) / 44.0) ** 2 + ((x - 48) / 46.0) ** 2 < 1
    hu[np.broadcast_to(body, shape)] = 40.0
    lungs = ((y - 48) / 34.0) ** 2 + ((x - 48) / 38.0) ** 2 < 1
    heart = ((y - 48) / 14.0) ** 2 + ((x - 48) / 16.0) ** 2 < 1  # 2 x 3 mm voxels: ~4200 mm2 per slice
    hu[np.broadcast_to(lungs & ~heart, shape)] = -850.0
    hu[:3] = 40.0
    hu[-3:] = 40.0
    mask = segment_lungs(CTVolume(hu, (3.0, 2.0, 2.0))).full_mask()
    assert not mask[15, 48, 48]  # heart centre
    assert mask[15, 48, 20]  # lung
