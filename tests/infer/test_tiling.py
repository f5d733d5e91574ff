"""The detector's own tiling against hand-computed windows and against MONAI's ``sliding_window_inference``
(an independent implementation of the same rule; MONAI stays installed for training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lungcad.infer.tiling import gaussian_weights, redundancy, sliding_window, window_starts


def test_window_starts_hand_computed() -> None:
    assert window_starts(200, 96, 0.25) == [0, 72, 104]  # 144 + 96 > 200 -> last moved back to 104
    assert window_starts(96, 96, 0.25) == [0]
    assert window_starts(50, 96, 0.25) == [0]  # shorter than a window: one (padded) window
    assert window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert window_starts(10, 4, 0.0) == [0, 4, 6]
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 1\), got 1.0"):
        window_starts(10, 4, 1.0)


def test_redundancy_hand_computed() -> None:
    assert redundancy((200, 200, 200), (96, 96, 96), 0.25) == pytest.approx(27 * 96**3 / 200**3)
    assert redundancy((96, 192, 96), (96, 96, 96), 0.0) == pytest.approx(1.0)


def test_gaussian_weights_centre_and_floor() -> None:
    w = gaussian_weights((9, 9, 9))
    assert w[4, 4, 4] == pytest.approx(1.0)
    # sigma = 9 * 0.125 = 1.125; one voxel off centre on one axis: exp(-1 / (2 * 1.125^2))
    assert w[4, 4, 5] == pytest.approx(np.exp(-1 / (2 * 1.125**2)), rel=1e-6)
    assert float(w.min()) == pytest.approx(1e-3)  # the corners are clamped to 1e-3


class TwoScales(nn.Module):
    """A position-dependent random predictor with a full-resolution and a stride-2 output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, 2, 3, padding=1)
        self.head = nn.Conv3d(2, 3, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.conv(x)
        return a, self.head(F.relu(a))


@pytest.mark.parametrize(
    ("shape", "window", "overlap", "blend", "batch"),
    [
        ((40, 52, 36), (16, 16, 16), 0.25, "gaussian", 2),
        ((23, 41, 30), (16, 16, 16), 0.5, "constant", 3),
        ((10, 33, 20), (16, 16, 16), 0.25, "gaussian", 1),  # shorter than a window in z: padded
        ((16, 16, 16), (16, 16, 16), 0.0, "gaussian", 1),
    ],
)
def test_matches_monai(shape: tuple, window: tuple, overlap: float, blend: str, batch: int) -> None:
    from monai.inferers import sliding_window_inference

    net = TwoScales().eval()
    image = torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = sliding_window(image, window, net, overlap=overlap, batch_size=batch, blend=blend)
        ref = sliding_window_inference(image, window, batch, net, overlap=overlap, mode=blend)
    assert len(ours) == 2
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b.as_tensor() if hasattr(b, "as_tensor") else b, rtol=1e-5, atol=1e-6)


def test_bad_arguments() -> None:
    net = TwoScales()
    with pytest.raises(ValueError, match=r"image must be \(1, C, D, H, W\), got \(4, 4, 4\)"):
        sliding_window(torch.zeros(4, 4, 4), (4, 4, 4), net, 0.25)
    with pytest.raises(ValueError, match="blend must be 'gaussian' or 'constant', got 'box'"):
        sliding_window(torch.zeros(1, 1, 4, 4, 4), (4, 4, 4), net, 0.25, blend="box")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        sliding_window(torch.zeros(1, 1, 4, 4, 4), (4, 4, 4), net, 0.25, batch_size=0)
