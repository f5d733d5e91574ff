"""Peak finding on hand-built heatmaps and exact sliding-window stitching of an identity predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lungcad.infer.candidates import candidates_from_prediction, head_to_input_voxels
from lungcad.infer.peaks import find_peaks, merge_close
from lungcad.infer.sliding import VolumePrediction, predict_volume
from lungcad.model.unet import UNetOutput
from lungcad.types import CTVolume


def test_find_peaks_hand_built() -> None:
    h = np.zeros((5, 6, 7), dtype=np.float32)
    h[1, 1, 1] = 0.9
    h[1, 1, 2] = 0.5  # neighbour of a higher peak: suppressed
    h[3, 4, 5] = 0.3
    h[0, 5, 6] = 0.05  # below the threshold
    peaks = find_peaks(h, threshold=0.1)
    assert peaks.zyx.tolist() == [[1, 1, 1], [3, 4, 5]]
    np.testing.assert_allclose(peaks.scores, [0.9, 0.3], rtol=0, atol=1e-7)
    assert len(find_peaks(h, threshold=0.1, top_k=1).scores) == 1


def test_find_peaks_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kernel must be a positive odd number, got 2"):
        find_peaks(np.zeros((3, 3, 3)), kernel=2)
    with pytest.raises(ValueError, match=r"heatmap must be \(D, H, W\)"):
        find_peaks(np.zeros((3, 3)))


def test_merge_close_keeps_best_of_close_pairs() -> None:
    pts = np.array([[0, 0, 0], [3, 0, 0], [10, 0, 0]], dtype=float)
    assert merge_close(pts, np.array([0.5, 0.9, 0.1]), 4.0).tolist() == [1, 2]


def test_head_voxel_centres() -> None:
    # head voxel j of stride 2 covers input voxels 2j, 2j+1 -> centre 2j + 0.5
    np.testing.assert_array_equal(head_to_input_voxels(np.array([[0, 1, 3]]), 2), [[0.5, 2.5, 6.5]])


class IdentityHeads(nn.Module):
    """Segmentation logit = input, heatmap = 2x2x2 mean of the input: stitching must reproduce both."""

    head_stride = 2

    def forward(self, x: torch.Tensor) -> UNetOutput:
        pooled = F.avg_pool3d(x, 2, ceil_mode=True)
        return UNetOutput(x, pooled, torch.zeros_like(pooled), torch.zeros_like(pooled))


def test_sliding_window_reproduces_identity_predictor() -> None:
    image = torch.rand(40, 52, 36, generator=torch.Generator().manual_seed(0)).numpy()
    pred = predict_volume(IdentityHeads(), image, patch_size=(16, 16, 16), overlap=0.5)
    np.testing.assert_allclose(pred.segmentation, 1 / (1 + np.exp(-image)), rtol=0, atol=1e-5)
    pooled = F.avg_pool3d(torch.from_numpy(image)[None, None], 2)[0, 0].numpy()
    np.testing.assert_allclose(pred.heatmap, 1 / (1 + np.exp(-pooled)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(pred.diameter_mm, 10.0, rtol=1e-6)  # size code 0 -> 10 mm


def test_candidates_in_world_coordinates() -> None:
    heat = np.zeros((4, 4, 4), dtype=np.float32)
    heat[1, 2, 3] = 0.8
    pred = VolumePrediction(
        np.zeros((8, 8, 8)), heat, np.full((4, 4, 4), 7.0), np.full((4, 4, 4), 0.25), head_stride=2
    )
    grid = CTVolume(np.zeros((8, 8, 8)), (1.0, 1.0, 1.0), origin_xyz_mm=(100.0, 200.0, 300.0))
    (f,) = candidates_from_prediction(pred, grid)
    # head (1, 2, 3) -> input voxel (2.5, 4.5, 6.5) -> world x = 106.5, y = 204.5, z = 302.5
    assert f.center_xyz_mm == pytest.approx((106.5, 204.5, 302.5))
    assert f.probability == pytest.approx(0.8) and f.diameter_mm == 7.0 and f.triage_probability == 0.25
    lung = np.zeros((8, 8, 8), dtype=bool)
    assert candidates_from_prediction(pred, grid, lung_mask=lung) == []
