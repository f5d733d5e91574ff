"""Size regression loss: smooth L1 on the log-diameter code, at nodule centre voxels only."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lungcad.model.size_coding import encode_diameter
from lungcad.train.losses.segmentation import _check_same_shape

# Smooth L1 switches from quadratic to linear at |error| = beta.  In ln(d) units 0.1 is a 10 % size error:
# small errors are refined smoothly, gross ones (a 4 mm nodule called 12 mm, error ln 3 = 1.1) pull with a
# bounded gradient instead of dominating the batch.
SIZE_BETA = 0.1


def size_loss(pred: Tensor, target_mm: Tensor, center_mask: Tensor, beta: float = SIZE_BETA) -> Tensor:
    """Mean smooth L1 between the size head and ``encode_diameter(target_mm)`` over centre voxels.

    Args:
        pred: ``(B, 1, D, H, W)`` size-head output (``ln(d / 10 mm)``).
        target_mm: same shape, diameter in mm at centre voxels (values elsewhere are ignored).
        center_mask: same shape, 1 at centre voxels, 0 elsewhere.
        beta: smooth L1 transition point, in ln units.

    Returns:
        Scalar loss; 0 (still connected to ``pred`` for the autograd graph) when the batch has no centre.
    """
    _check_same_shape(pred, target_mm)
    _check_same_shape(pred, center_mask)
    mask = center_mask.float()
    per_voxel = F.smooth_l1_loss(
        pred.float(), encode_diameter(target_mm.float()), reduction="none", beta=beta
    )
    return (per_voxel * mask).sum() / mask.sum().clamp(min=1.0)
