"""Triage loss: class-weighted binary cross-entropy on the "actionable" logit at nodule centres."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lungcad.train.losses.segmentation import _check_same_shape


def triage_loss(logits: Tensor, target: Tensor, center_mask: Tensor, pos_weight: float = 1.0) -> Tensor:
    """Weighted BCE averaged over centre voxels whose triage label is known.

    ``loss_i = -(w * t_i * log p_i + (1 - t_i) * log(1 - p_i))`` with ``w = pos_weight``, summed over the
    centres and divided by their number (as ``BCEWithLogitsLoss(pos_weight=w)`` with mean reduction):
    ``w > 1`` raises the cost of missing an actionable nodule when they are the minority.

    Args:
        logits: ``(B, 1, D, H, W)`` triage logits.
        target: same shape, 1 actionable / 0 not; negative values (``TRIAGE_IGNORE`` = -1 of the
            ground-truth targets) are ignored.
        center_mask: same shape, 1 at centre voxels.
        pos_weight: weight of the positive class (> 0).

    Returns:
        Scalar loss; 0 (connected to ``logits``) when the batch has no labelled centre.

    Raises:
        ValueError: ``pos_weight <= 0`` or mismatched shapes.
    """
    if not pos_weight > 0:
        raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
    _check_same_shape(logits, target)
    _check_same_shape(logits, center_mask)
    t = target.float()
    valid = (center_mask > 0) & (t >= 0)
    weight = valid.float()
    per_voxel = F.binary_cross_entropy_with_logits(
        logits.float(),
        t.clamp(min=0.0),
        reduction="none",
        pos_weight=torch.tensor(pos_weight, dtype=torch.float32, device=logits.device),
    )
    return (per_voxel * weight).sum() / weight.sum().clamp(min=1.0)
