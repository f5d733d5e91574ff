"""The detector's own tiling against hand-computed windows and against MONAI's ``sliding_window_inference``
(an independent implementation of the same rule; MONAI stays installed for training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lungcad.infer.tiling import even_axis, gaussian_weights, redundancy, sliding_window, window_starts


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


def test_even_axis_hand_computed() -> None:
    # 283 voxels, windows of at most 128 sharing >= 24, starts on even voxels (see the docstring)
    assert even_axis(283, 128, 0.1875, 16, 2) == (112, [0, 86, 172])
    assert even_axis(212, 128, 0.1875, 16, 2) == (128, [0, 84])
    assert even_axis(60, 96, 0.25, 16) == (64, [0])  # one window, padded to the stride
    assert even_axis(97, 128, 0.1875, 16) == (112, [0])  # one window, padded 97 -> 112
    for size in range(129, 700, 7):
        win, starts = even_axis(size, 128, 0.1875, 16, 2)
        assert win % 16 == 0 and win <= 128 and starts[0] == 0 and size <= starts[-1] + win <= size + 1
        assert all(s % 2 == 0 for s in starts)
        assert all(b - a <= win - 24 for a, b in zip(starts, starts[1:], strict=False))  # >= 24 shared


def test_even_tiling_costs_less_than_the_grid() -> None:
    # LIDC-IDRI-0001's lung crop at 1 mm
    assert redundancy((283, 212, 274), (96, 96, 96), 0.25) == pytest.approx(2.583, abs=1e-3)
    even = redundancy((283, 212, 274), (128, 128, 128), 0.1875, "even", align=2)
    assert even == pytest.approx(1.758, abs=1e-3)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, F.avg_pool3d(x, 2)


@pytest.mark.parametrize("shape", [(40, 52, 36), (23, 70, 30)])
def test_even_tiling_reproduces_an_identity_predictor(shape: tuple) -> None:
    image = torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(2))
    seg, head = sliding_window(image, (32, 32, 32), Identity(), 0.25, tiling="even", multiple=16, align=2)
    torch.testing.assert_close(seg, image, rtol=0, atol=1e-6)
    # the head windows start on even voxels, so the stitched head is the 2x2x2 mean of the image (padded
    # with zeros to even sides), with no half-voxel shift
    even = F.pad(image, [0, shape[2] % 2, 0, shape[1] % 2, 0, shape[0] % 2])
    torch.testing.assert_close(head, F.avg_pool3d(even, 2), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="tiling must be 'grid' or 'even', got 'tiles'"):
        sliding_window(image, (32, 32, 32), Identity(), 0.25, tiling="tiles")
