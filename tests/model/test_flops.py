"""FLOP counting: a hand-computed conv, proportionality, and the speed budget against BasicUNet."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import BasicUNet

from lungcad.model import LungUNet, count_flops, flops_per_voxel


def test_single_conv_by_hand() -> None:
    # Conv3d(1 -> 2, 3^3, padding 1) on 4^3: 64 output voxels x 2 channels x 27 taps x 1 input channel
    # = 3456 multiply-adds = 6912 FLOPs, i.e. 108 FLOPs per input voxel.  The bias is not counted.
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    assert count_flops(conv, (1, 1, 4, 4, 4)) == 6912
    assert flops_per_voxel(conv, (4, 4, 4)) == 108.0


def test_transposed_conv_by_hand() -> None:
    # ConvTranspose3d(2 -> 3, 2^3, stride 2) on 2^3: every input voxel paints 8 outputs x 3 channels from
    # 2 input channels: 8 x 8 x 3 x 2 = 384 multiply-adds = 768 FLOPs.
    up = torch.nn.ConvTranspose3d(2, 3, 2, stride=2)
    assert count_flops(up, (1, 2, 2, 2, 2)) == 768


def test_per_voxel_cost_is_independent_of_the_probe_size() -> None:
    model = LungUNet(widths=(4, 8, 8, 8))
    assert flops_per_voxel(model, (16, 16, 16)) == flops_per_voxel(model, (32, 16, 48))


def test_default_model_is_over_10x_cheaper_than_basic_unet() -> None:
    # 32^3: BasicUNet's instance norms need > 1 voxel at its 1/16 bottleneck.
    ours = flops_per_voxel(LungUNet(), (32, 32, 32))
    reference = flops_per_voxel(BasicUNet(spatial_dims=3, in_channels=1, out_channels=2), (32, 32, 32))
    # Numbers recorded in lungcad/model/unet.py's docstring.
    assert ours == pytest.approx(16.07e3, rel=1e-3)
    assert reference == pytest.approx(285.2e3, rel=1e-3)
    assert reference / ours > 10


def test_training_flag_is_restored_and_bad_shapes_rejected() -> None:
    model = LungUNet(widths=(4, 8, 8, 8)).train()
    count_flops(model, (1, 1, 16, 16, 16))
    assert model.training
    with pytest.raises(ValueError, match=r"got \(1, 16, 16, 16\)"):
        count_flops(model, (1, 16, 16, 16))
    with pytest.raises(ValueError, match=r"spatial_shape must be \(D, H, W\), got \(16, 16\)"):
        flops_per_voxel(model, (16, 16))
