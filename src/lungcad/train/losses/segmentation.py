"""Segmentation loss: soft Dice (MONAI) + binary cross-entropy, both on logits."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import Tensor


class SegmentationLossTerms(NamedTuple):
    """``total = dice + bce``; the parts are kept for logging."""

    total: Tensor
    dice: Tensor
    bce: Tensor


def dice_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Batch soft Dice loss ``1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth)`` with ``p = sigmoid``.

    The sums run over the whole batch ("batch Dice", as nnU-Net): most training patches are negatives with
    an empty mask, where a per-patch Dice is undefined (0 / 0) or, smoothed, dominated by the smoothing
    constant; pooling the batch gives one well-defined overlap per step.

    Args:
        logits: ``(B, 1, D, H, W)`` segmentation logits.
        target: same shape, 0 / 1 (any numeric dtype).
        smooth: added to numerator and denominator (1.0: an empty target and an all-zero prediction give
            a loss of 0, and a stray voxel probability of 0.5 costs 0.5 / 1.5 = 0.33).
    """
    _check_same_shape(logits, target)
    loss = DiceLoss(sigmoid=True, batch=True, smooth_nr=smooth, smooth_dr=smooth)
    return loss(logits.float(), target.float())


def segmentation_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> SegmentationLossTerms:
    """Dice + mean voxel-wise BCE (shapes as ``dice_loss``).

    Dice alone gives no gradient where prediction and target are both empty and is noisy for tiny
    nodules; the BCE term keeps every voxel calibrated.
    """
    dice = dice_loss(logits, target, smooth)
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return SegmentationLossTerms(total=dice + bce, dice=dice, bce=bce)


def _check_same_shape(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
