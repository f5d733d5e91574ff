"""The weighted multi-task loss over the four heads, with per-term values for logging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor, nn

from lungcad.config import LOSS_TERMS, TrainConfig
from lungcad.model.unet import UNetOutput
from lungcad.train.losses.head_targets import infer_head_stride, to_head_resolution
from lungcad.train.losses.heatmap import centernet_focal_loss
from lungcad.train.losses.segmentation import segmentation_loss
from lungcad.train.losses.size import SIZE_BETA, size_loss
from lungcad.train.losses.triage import triage_loss
from lungcad.types import BatchKey

REQUIRED_TARGETS: tuple[BatchKey, ...] = (
    BatchKey.SEGMENTATION,
    BatchKey.HEATMAP,
    BatchKey.SIZE,
    BatchKey.CENTER_MASK,
    BatchKey.TRIAGE,
)


class LossOutput(NamedTuple):
    """``total`` carries the gradient; ``terms`` are detached, *unweighted* scalars for logging.

    ``terms`` keys: ``segmentation`` (= ``segmentation_dice + segmentation_bce``), ``segmentation_dice``,
    ``segmentation_bce``, ``heatmap``, ``size``, ``triage``, and ``total``.
    """

    total: Tensor
    terms: dict[str, Tensor]


class MultiTaskLoss(nn.Module):
    """``total = sum_k weight_k * term_k`` over the four heads.

    Args:
        weights: weight per term (keys from ``LOSS_TERMS``; a missing key weighs 0 but is still logged).
        triage_pos_weight: positive-class weight of the triage BCE.
        focal_alpha, focal_beta: CenterNet focal-loss exponents.
        size_beta: smooth L1 transition of the size loss (ln units).
        dice_smooth: Dice smoothing constant.

    Raises:
        ValueError: an unknown or negative weight.
    """

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        triage_pos_weight: float = 1.0,
        focal_alpha: float = 2.0,
        focal_beta: float = 4.0,
        size_beta: float = SIZE_BETA,
        dice_smooth: float = 1.0,
    ) -> None:
        super().__init__()
        weights = dict(TrainConfig().loss_weights if weights is None else weights)
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"unknown loss terms {unknown}; allowed: {LOSS_TERMS}")
        bad = {k: v for k, v in weights.items() if not float(v) >= 0}
        if bad:
            raise ValueError(f"loss weights must be >= 0, got {bad}")
        if not triage_pos_weight > 0:
            raise ValueError(f"triage_pos_weight must be > 0, got {triage_pos_weight}")
        self.weights = {k: float(weights.get(k, 0.0)) for k in LOSS_TERMS}
        self.triage_pos_weight = float(triage_pos_weight)
        self.focal_alpha, self.focal_beta = float(focal_alpha), float(focal_beta)
        self.size_beta, self.dice_smooth = float(size_beta), float(dice_smooth)

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> MultiTaskLoss:
        """The loss of the ``train:`` configuration section."""
        return cls(weights=cfg.loss_weights, triage_pos_weight=cfg.triage_pos_weight)

    def forward(self, output: UNetOutput, batch: Mapping[str, Tensor]) -> LossOutput:
        """Compute every term and their weighted sum.

        Args:
            output: the model's ``UNetOutput`` (any float dtype; the losses run in fp32).
            batch: full-resolution targets under ``REQUIRED_TARGETS`` keys, each ``(B, 1, D, H, W)`` or
                ``(B, D, H, W)`` of the segmentation output's spatial shape, as built by
                ``lungcad.annotations.targets`` (heatmap peaks exactly 1.0, size in mm at centre voxels,
                triage 1 / 0 / -1 ignore).  Heatmap, size and triage targets are max-pooled to the head
                resolution (``head_targets``).

        Raises:
            ValueError: a missing target or a shape that matches neither output.
        """
        missing = [str(k) for k in REQUIRED_TARGETS if k not in batch]
        if missing:
            raise ValueError(f"batch is missing targets {missing}; it has {sorted(str(k) for k in batch)}")
        seg_shape = tuple(output.segmentation.shape)
        targets = {k: _with_channel_axis(batch[k], seg_shape, k) for k in REQUIRED_TARGETS}
        stride = infer_head_stride(seg_shape[2:], output.heatmap.shape[2:])
        head = to_head_resolution(targets, stride)

        seg = segmentation_loss(output.segmentation, targets[BatchKey.SEGMENTATION], self.dice_smooth)
        raw = {
            "segmentation": seg.total,
            "heatmap": centernet_focal_loss(
                output.heatmap, head[BatchKey.HEATMAP], self.focal_alpha, self.focal_beta
            ),
            "size": size_loss(output.size, head[BatchKey.SIZE], head[BatchKey.CENTER_MASK], self.size_beta),
            "triage": triage_loss(
                output.triage, head[BatchKey.TRIAGE], head[BatchKey.CENTER_MASK], self.triage_pos_weight
            ),
        }
        total = torch.stack([self.weights[k] * raw[k] for k in LOSS_TERMS]).sum()
        terms = {k: v.detach() for k, v in raw.items()}
        terms["segmentation_dice"] = seg.dice.detach()
        terms["segmentation_bce"] = seg.bce.detach()
        terms["total"] = total.detach()
        return LossOutput(total=total, terms=terms)


def _with_channel_axis(t: Tensor, seg_shape: tuple[int, ...], key: BatchKey) -> Tensor:
    if t.dim() == len(seg_shape) - 1:
        t = t.unsqueeze(1)
    if tuple(t.shape) != seg_shape:
        raise ValueError(
            f"target {key!s} has shape {tuple(t.shape)}, expected {seg_shape} (or without axis 1)"
        )
    return t
