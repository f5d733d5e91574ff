"""Penalty-reduced pixel-wise focal loss for the centre heatmap (CenterNet, Zhou et al. 2019, eq. 1).

With ``p = sigmoid(logit)`` and a Gaussian target ``y`` that is exactly 1 at nodule centres::

    L = -1/N * sum over voxels of  (1 - p)^alpha * log(p)                 where y = 1   (N of them)
                                   (1 - y)^beta * p^alpha * log(1 - p)    elsewhere

``(1 - y)^beta`` forgives confident predictions next to a centre (a voxel at y = 0.73, one voxel from the
centre of a 10 mm nodule, weighs (0.27)^4 = 0.005 as a negative), and ``N`` (at least 1) makes the loss
independent of how many voxels a patch has.  Hand-written because MONAI's ``FocalLoss`` is the
classification focal loss, without the penalty reduction or the peak normalisation.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lungcad.train.losses.segmentation import _check_same_shape

# A centre is a voxel whose target is 1 up to float error; the next values of a Gaussian heatmap are far
# below (exp(-1 / (2 * 1.25^2)) = 0.73 for the smallest sigma of 1 mm on a 1 mm grid; 0.6 for sigma 1).
PEAK_TOLERANCE = 1e-3


def centernet_focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet focal loss, summed over the batch and divided by the number of peaks (>= 1).

    Args:
        logits: ``(B, 1, D, H, W)`` heatmap logits.
        target: same shape, values in [0, 1], exactly 1 at nodule centres.
        alpha: focusing exponent on the prediction (2 in CenterNet).
        beta: penalty-reduction exponent on ``1 - target`` (4 in CenterNet).

    Returns:
        Scalar loss (fp32).
    """
    _check_same_shape(logits, target)
    x, y = logits.float(), target.float()
    # log p and log(1 - p) from the logit directly: exact for large |x|, where sigmoid saturates to 0 or 1
    # in float32 and log(0) would give -inf.
    log_p, log_1mp = F.logsigmoid(x), F.logsigmoid(-x)
    p = log_p.exp()
    pos = (y >= 1.0 - PEAK_TOLERANCE).float()
    pos_loss = -((1.0 - p) ** alpha) * log_p * pos
    neg_loss = -((1.0 - y) ** beta) * p**alpha * log_1mp * (1.0 - pos)
    n_pos = pos.sum().clamp(min=1.0)
    return (pos_loss.sum() + neg_loss.sum()) / n_pos
