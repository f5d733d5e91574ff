"""Dice + BCE segmentation loss on a hand-computed 4-voxel case."""

from __future__ import annotations

import math

import pytest
import torch

from lungcad.train.losses import dice_loss, segmentation_loss

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25


def _vox(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 1, len(values), 1, 1)


def test_dice_and_bce_by_hand() -> None:
    # p = sigmoid(logits) = [0.5, 0.75, 0.25, 0.5], target t = [1, 1, 0, 0], smooth = 1:
    #   sum(p t) = 0.5 + 0.75 = 1.25;  sum p = 2.0;  sum t = 2
    #   Dice loss = 1 - (2 x 1.25 + 1) / (2 + 2 + 1) = 1 - 3.5 / 5 = 0.3
    #   BCE = -(ln 0.5 + ln 0.75 + ln 0.75 + ln 0.5) / 4 = (2 x 0.693147 + 2 x 0.287682) / 4 = 0.490415
    #   total = 0.790415
    logits, target = _vox(0.0, LN3, -LN3, 0.0), _vox(1, 1, 0, 0)
    terms = segmentation_loss(logits, target)
    assert terms.dice.item() == pytest.approx(0.3, abs=1e-6)
    assert terms.bce.item() == pytest.approx(0.490415, abs=1e-6)
    assert terms.total.item() == pytest.approx(0.790415, abs=1e-6)


def test_batch_dice_pools_an_empty_patch_with_a_full_one() -> None:
    # Patch 1: p = [0.5, 0.5], t = [1, 1]; patch 2 (a negative): p = [0.5, 0.5], t = [0, 0].
    # Batch sums: sum(p t) = 1, sum p = 2, sum t = 2 -> 1 - (2 + 1) / (4 + 1) = 0.4.
    logits = torch.zeros(2, 1, 2, 1, 1)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(2, 1, 2, 1, 1)
    assert dice_loss(logits, target).item() == pytest.approx(0.4, abs=1e-6)


def test_uint8_targets_and_shape_mismatch() -> None:
    logits = torch.zeros(1, 1, 2, 2, 2, requires_grad=True)
    segmentation_loss(logits, torch.ones(1, 1, 2, 2, 2, dtype=torch.uint8)).total.backward()
    assert logits.grad is not None and torch.all(logits.grad < 0)  # every voxel pushed toward 1
    with pytest.raises(ValueError, match=r"shapes differ: \(1, 1, 2, 2, 2\) vs \(1, 1, 2, 2\)"):
        segmentation_loss(logits, torch.ones(1, 1, 2, 2))
