"""The weighted multi-task loss: a hand-computed 2x2x2 patch, validation, and the real model + targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lungcad.annotations.targets import TargetNodule, build_targets
from lungcad.config import TrainConfig
from lungcad.model import LungUNet, UNetOutput
from lungcad.train.losses import MultiTaskLoss
from lungcad.types import BatchKey, CTVolume

LN2 = math.log(2.0)


def _patch_batch() -> dict[BatchKey, torch.Tensor]:
    # A 2x2x2 patch with one nodule centred at voxel (0, 0, 0); with head stride 2 the head grid is 1 voxel.
    shape = (1, 1, 2, 2, 2)
    seg = torch.zeros(shape, dtype=torch.uint8)
    seg[0, 0, 0, 0, 0] = 1
    heat = torch.full(shape, 0.6)
    heat[0, 0, 0, 0, 0] = 1.0
    mask = torch.zeros(shape, dtype=torch.uint8)
    mask[0, 0, 0, 0, 0] = 1
    size = 10.0 * mask.float()
    triage = torch.full(shape, -1, dtype=torch.int8)
    triage[0, 0, 0, 0, 0] = 1
    return {
        BatchKey.SEGMENTATION: seg,
        BatchKey.HEATMAP: heat,
        BatchKey.CENTER_MASK: mask,
        BatchKey.SIZE: size,
        BatchKey.TRIAGE: triage,
    }


def _output(size_code: float = 0.05) -> UNetOutput:
    one = torch.zeros(1, 1, 1, 1, 1)
    return UNetOutput(torch.zeros(1, 1, 2, 2, 2), one.clone(), one + size_code, one.clone())


def test_weighted_sum_by_hand() -> None:
    # All logits 0 (p = 0.5); size code 0.05 against ln(10 / 10) = 0; default weights 1, 1, 0.1, 0.2.
    #   segmentation: Dice 1 - (2 x 0.5 + 1) / (8 x 0.5 + 1 + 1) = 1 - 2/6 = 0.666667; BCE ln 2 = 0.693147
    #                 -> 1.359814
    #   heatmap:      pooled target 1.0 (peak) at p = 0.5: 0.25 ln 2 = 0.173287 (1 peak)
    #   size:         0.5 x 0.05^2 / 0.1 = 0.0125
    #   triage:       t = 1 at p = 0.5, pos_weight 1: ln 2 = 0.693147
    #   total = 1.359814 + 0.173287 + 0.1 x 0.0125 + 0.2 x 0.693147 = 1.672980
    out = MultiTaskLoss()(_output(), _patch_batch())
    terms = {k: v.item() for k, v in out.terms.items()}
    assert terms["segmentation_dice"] == pytest.approx(2 / 3, abs=1e-6)
    assert terms["segmentation_bce"] == pytest.approx(LN2, abs=1e-6)
    assert terms["segmentation"] == pytest.approx(1.359814, abs=1e-6)
    assert terms["heatmap"] == pytest.approx(0.173287, abs=1e-6)
    assert terms["size"] == pytest.approx(0.0125, abs=1e-6)
    assert terms["triage"] == pytest.approx(LN2, abs=1e-6)
    assert out.total.item() == pytest.approx(1.672980, abs=1e-6) == terms["total"]
    assert all(not v.requires_grad for v in out.terms.values())


def test_missing_weight_is_zero_and_bad_weights_rejected() -> None:
    # Only the heatmap counts: total = 0.173287, the other terms are still logged.
    out = MultiTaskLoss(weights={"heatmap": 1.0})(_output(), _patch_batch())
    assert out.total.item() == pytest.approx(0.25 * LN2, abs=1e-6)
    assert out.terms["size"].item() == pytest.approx(0.0125, abs=1e-6)
    with pytest.raises(ValueError, match=r"unknown loss terms \['dice'\]"):
        MultiTaskLoss(weights={"dice": 1.0})
    with pytest.raises(ValueError, match=r"loss weights must be >= 0, got \{'size': -1.0\}"):
        MultiTaskLoss(weights={"size": -1.0})


def test_missing_target_and_bad_shape() -> None:
    batch = _patch_batch()
    del batch[BatchKey.TRIAGE]
    with pytest.raises(ValueError, match=r"batch is missing targets \['triage'\]"):
        MultiTaskLoss()(_output(), batch)
    batch = _patch_batch()
    batch[BatchKey.SIZE] = torch.zeros(1, 1, 2, 2, 3)
    with pytest.raises(
        ValueError, match=r"target size has shape \(1, 1, 2, 2, 3\), expected \(1, 1, 2, 2, 2\)"
    ):
        MultiTaskLoss()(_output(), batch)


def test_channel_less_targets_are_accepted() -> None:
    batch = {k: v[:, 0] for k, v in _patch_batch().items()}  # (B, D, H, W)
    assert MultiTaskLoss()(_output(), batch).total.item() == pytest.approx(1.672980, abs=1e-6)


def test_config_weights_reach_the_loss() -> None:
    cfg = TrainConfig(loss_weights={"segmentation": 2.0, "heatmap": 1.0}, triage_pos_weight=3.0)
    loss = MultiTaskLoss.from_config(cfg)
    assert loss.weights == {"segmentation": 2.0, "heatmap": 1.0, "size": 0.0, "triage": 0.0}
    assert loss.triage_pos_weight == 3.0


def test_real_model_and_ground_truth_targets_train_end_to_end() -> None:
    # Targets from lungcad.annotations for one 8 mm actionable nodule in a 1 mm, 32 x 24 x 20 grid (odd
    # head shapes: 16 x 12 x 10), through a tiny model under bf16 autocast, as training will run.
    grid = CTVolume(hu=np.zeros((32, 24, 20), dtype=np.float32), spacing_zyx_mm=(1.0, 1.0, 1.0))
    targets = build_targets([TargetNodule((9.0, 12.0, 15.0), 8.0, actionable=True)], grid)
    batch = {k: torch.from_numpy(v)[None, None] for k, v in targets.items()}
    torch.manual_seed(0)
    model = LungUNet(widths=(4, 8, 8, 8)).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 1, 32, 24, 20))
    loss = MultiTaskLoss()(out, batch)
    assert out.heatmap.shape == (1, 1, 16, 12, 10)
    assert torch.isfinite(loss.total) and loss.total.dtype == torch.float32
    assert loss.terms["size"].item() > 0 and loss.terms["triage"].item() > 0  # the centre was found
    loss.total.backward()
    assert all(p.grad is not None for p in model.parameters())
