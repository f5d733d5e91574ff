"""Shapes, configuration and validation of ``LungUNet``."""

from __future__ import annotations

import math

import pytest
import torch

from lungcad.config import ModelConfig, load_config
from lungcad.model import LungUNet, UNetOutput

TINY = (4, 8, 8, 8)


@pytest.mark.parametrize("head_stride", [1, 2])
@pytest.mark.parametrize("spatial", [(19, 23, 17), (1, 5, 3), (16, 32, 16), (33, 16, 9)])
def test_output_shapes_on_odd_sizes(head_stride: int, spatial: tuple[int, int, int]) -> None:
    model = LungUNet(widths=TINY, head_stride=head_stride).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, *spatial))
    assert isinstance(out, UNetOutput)
    assert out.segmentation.shape == (2, 1, *spatial)
    head = tuple(math.ceil(s / head_stride) for s in spatial)
    for t in (out.heatmap, out.size, out.triage):
        assert t.shape == (2, 1, *head)
    assert all(torch.isfinite(t).all() for t in out)


@pytest.mark.parametrize("norm", ["batch", "instance", "group"])
def test_norms_train_step_reaches_every_parameter(norm: str) -> None:
    model = LungUNet(widths=TINY, norm=norm, dropout=0.1).train()
    # 32^3: the 1/16 bottleneck must keep > 1 voxel for instance norm statistics in training.
    out = model(torch.rand(2, 1, 32, 32, 32))
    sum(t.float().mean() for t in out).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_from_config_uses_every_field() -> None:
    cfg = ModelConfig(widths=(4, 6, 8, 10), depth=1, norm="group", head_stride=1, in_channels=2)
    model = LungUNet.from_config(cfg)
    assert model.widths == (4, 6, 8, 10)
    assert model.head_stride == 1 and model.total_stride == cfg.total_stride == 8
    assert model.encoder[0][0][0].in_channels == 2
    assert isinstance(model.encoder[0][0][1], torch.nn.GroupNorm)
    # depth=1: the down conv plus one 3x3x3 conv per encoder level.
    assert len(model.encoder[1]) == 2


def test_default_config_builds_the_documented_model() -> None:
    model = LungUNet.from_config(load_config(environ={}).model)
    assert model.widths == (16, 32, 64, 96) and model.total_stride == 16
    # Heatmap / segmentation biases start at the 0.1 prior (CenterNet initialisation).
    assert torch.sigmoid(model.heads.bias[:2]).tolist() == pytest.approx([0.1, 0.1])


@pytest.mark.parametrize("head_stride", [1, 2])
def test_internal_padding_is_zeros_at_the_far_end(head_stride: int) -> None:
    # A 29 x 30 x 31 input is padded with zeros to 32^3 and cropped back, so it must give exactly the
    # outputs of the 32^3 input that holds the same voxels and zeros beyond them (up to float summation
    # order: oneDNN may block the two sizes differently).
    model = LungUNet(widths=TINY, head_stride=head_stride).eval()
    small = torch.rand(1, 1, 29, 30, 31)
    big = torch.zeros(1, 1, 32, 32, 32)
    big[:, :, :29, :30, :31] = small
    with torch.no_grad():
        out_small, out_big = model(small), model(big)
    torch.testing.assert_close(
        out_small.segmentation, out_big.segmentation[:, :, :29, :30, :31], rtol=0, atol=1e-6
    )
    n = tuple(math.ceil(s / head_stride) for s in (29, 30, 31))
    torch.testing.assert_close(
        out_small.heatmap, out_big.heatmap[:, :, : n[0], : n[1], : n[2]], rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": (4, 8, 8)}, r"widths must be 4 positive channel counts, got \(4, 8, 8\)"),
        ({"widths": (4, 0, 8, 8)}, r"got \(4, 0, 8, 8\)"),
        ({"depth": 0}, "depth must be >= 1, got 0"),
        ({"head_stride": 4}, "head_stride must be 1 or 2, got 4"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"norm": "layer"}, "norm must be one of .*, got 'layer'"),
        ({"in_channels": 0}, "in_channels must be >= 1, got 0"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LungUNet(**kwargs)
