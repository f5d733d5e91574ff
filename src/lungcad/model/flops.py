"""FLOPs per input voxel of a 3-D network, counted by PyTorch's own ``FlopCounterMode``.

``FlopCounterMode`` counts a convolution (and a transposed convolution) as ``2 x`` its multiply-adds, and
ignores elementwise work (normalisation, activation, interpolation, padding, concatenation): those are
memory-bound, a few FLOPs per voxel-channel, and would not change a comparison between two U-Nets.

For a fully convolutional network whose input sides are multiples of its total stride, the count is
exactly proportional to the number of input voxels, so a small probe input gives the per-voxel cost of
any patch: ``flops(64^3) / 64^3 == flops(128^3) / 128^3``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Total forward FLOPs of ``model`` on one zero input of ``input_shape``.

    Args:
        model: any module taking one tensor; run in eval mode under ``torch.no_grad`` (its training flag
            is restored afterwards).
        input_shape: full input shape ``(B, C, D, H, W)``.

    Raises:
        ValueError: a shape that is not 5-D or has a non-positive side.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"input_shape must be 5 positive sizes (B, C, D, H, W), got {tuple(input_shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def flops_per_voxel(
    model: nn.Module, spatial_shape: Sequence[int] = (64, 64, 64), in_channels: int = 1
) -> float:
    """Forward FLOPs per input voxel for a batch of one.

    Args:
        model: a 3-D network taking ``(1, in_channels, D, H, W)``.
        spatial_shape: ``(D, H, W)`` of the probe; use multiples of the model's total stride so that no
            internal padding inflates the count.
        in_channels: input channels of the probe.
    """
    spatial = tuple(int(s) for s in spatial_shape)
    if len(spatial) != 3:
        raise ValueError(f"spatial_shape must be (D, H, W), got {tuple(spatial_shape)}")
    return count_flops(model, (1, in_channels, *spatial)) / math.prod(spatial)
