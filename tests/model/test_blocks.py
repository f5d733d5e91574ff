"""U-Net building blocks: normalisation factory and the block-aligned resampling levels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lungcad.model.blocks import DecoderLevel, EncoderLevel, make_norm


def test_make_norm_kinds() -> None:
    assert isinstance(make_norm("batch", 16), nn.BatchNorm3d)
    assert isinstance(make_norm("instance", 16), nn.InstanceNorm3d)
    group = make_norm("group", 12)
    assert isinstance(group, nn.GroupNorm) and group.num_groups == 4  # gcd(12, 8)
    with pytest.raises(ValueError, match="norm must be one of .*, got 'layer'"):
        make_norm("layer", 16)
    with pytest.raises(ValueError, match="channels must be > 0, got 0"):
        make_norm("batch", 0)


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (4, 2), (3, 1)])
def test_encoder_level_shapes(kernel: int, stride: int) -> None:
    level = EncoderLevel(3, 5, depth=2, norm="batch", down_kernel=kernel, down_stride=stride).eval()
    assert level(torch.rand(1, 3, 8, 12, 4)).shape == (1, 5, 8 // stride, 12 // stride, 4 // stride)
    assert len(level) == 3  # the resampling conv + depth 3x3x3 convs


def test_stride_2_kernel_2_level_sees_only_its_block() -> None:
    # Block alignment: a change in input block [2, 4) along z may only change output voxel 1 of a
    # kernel-2 stride-2 conv (before any 3x3x3 conv spreads it), never its neighbours.
    level = EncoderLevel(1, 2, depth=1, norm="batch", down_kernel=2).eval()
    down = level[0]
    x = torch.rand(1, 1, 8, 2, 2)
    x2 = x.clone()
    x2[0, 0, 2:4] += 1.0
    with torch.no_grad():
        changed = (down(x2) - down(x)).abs().amax(dim=(0, 1, 3, 4)) > 0
    assert changed.tolist() == [False, True, False, False]


def test_decoder_level_shape() -> None:
    level = DecoderLevel(8, 4, depth=2, norm="instance").eval()
    out = level(torch.rand(2, 8, 3, 4, 5), torch.rand(2, 4, 6, 8, 10))
    assert out.shape == (2, 4, 6, 8, 10)
