"""Training losses of the four heads, one per module, and their weighted combination."""

from lungcad.train.losses.combined import LossOutput, MultiTaskLoss
from lungcad.train.losses.head_targets import infer_head_stride, to_head_resolution
from lungcad.train.losses.heatmap import centernet_focal_loss
from lungcad.train.losses.segmentation import SegmentationLossTerms, dice_loss, segmentation_loss
from lungcad.train.losses.size import size_loss
from lungcad.train.losses.triage import triage_loss

__all__ = [
    "LossOutput",
    "MultiTaskLoss",
    "SegmentationLossTerms",
    "centernet_focal_loss",
    "dice_loss",
    "infer_head_stride",
    "segmentation_loss",
    "size_loss",
    "to_head_resolution",
    "triage_loss",
]
