"""Bring full-resolution training targets to the resolution of the model's centre heads.

The ground-truth targets (``lungcad.annotations.targets``) are built on the 1 mm patch grid; with the
default strided stem the heatmap, size and triage heads predict on a 2 mm grid whose voxel ``i`` covers
patch voxels ``[2i, 2i + 2)`` (see ``lungcad.model.blocks``).  A ``2 x 2 x 2`` max-pool with the same block
alignment (``ceil_mode`` for odd sides, matching the model's crop to ``ceil(D / 2)``) maps them exactly:

* heatmap: the pooled Gaussian still peaks at exactly 1.0 in the block holding the centre voxel;
* centre mask: 1 in that block;
* size and triage are read *at the centre voxel* (pooling ``value x mask``), so a neighbouring label of
  another nodule inside the same block cannot leak in.  Triage is shifted by +1 before pooling so that
  "no centre" (0) stays below "centre labelled not actionable" (1) and "centre with an unknown label"
  (-1 + 1 = 0) stays ignored.

Worked example (one axis): centre voxel at z = 5 with diameter 8 mm -> head voxel 2 holds mask 1 and size
8; head voxels 1 and 3 hold the Gaussian's max over z = 2..3 and 6..7, mask 0, size 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor

from lungcad.types import BatchKey

CENTER_KEYS: tuple[BatchKey, ...] = (BatchKey.HEATMAP, BatchKey.CENTER_MASK, BatchKey.SIZE, BatchKey.TRIAGE)


def infer_head_stride(target_spatial: Sequence[int], head_spatial: Sequence[int]) -> int:
    """The integer stride ``s`` with ``ceil(target / s) == head`` on every axis.

    Raises:
        ValueError: no stride in 1, 2, 4, 8 maps the target shape onto the head shape.
    """
    t, h = tuple(int(v) for v in target_spatial), tuple(int(v) for v in head_spatial)
    for s in (1, 2, 4, 8):
        if len(t) == len(h) and all(-(-a // s) == b for a, b in zip(t, h, strict=True)):
            return s
    raise ValueError(f"target spatial shape {t} does not map onto head shape {h} by a stride of 1, 2, 4 or 8")


def to_head_resolution(batch: Mapping[str, Tensor], stride: int) -> dict[BatchKey, Tensor]:
    """Heatmap, centre mask, size and triage targets at ``1 / stride`` resolution, as float tensors.

    Args:
        batch: holds the four ``CENTER_KEYS`` as ``(B, 1, D, H, W)`` tensors (any numeric dtype).
        stride: 1 (cast only) or the head stride.

    Returns:
        Dict with the four keys, ``(B, 1, ceil(D / stride), ...)`` each; triage is -1 where unknown.
    """
    heat = batch[BatchKey.HEATMAP].float()
    mask = (batch[BatchKey.CENTER_MASK] > 0).float()
    size = batch[BatchKey.SIZE].float()
    triage = batch[BatchKey.TRIAGE].float()
    if stride == 1:
        return {
            BatchKey.HEATMAP: heat,
            BatchKey.CENTER_MASK: mask,
            BatchKey.SIZE: size * mask,
            BatchKey.TRIAGE: triage.clamp(min=-1.0) * mask + (mask - 1.0),  # -1 away from centres
        }

    def pool(t: Tensor) -> Tensor:
        return F.max_pool3d(t, kernel_size=stride, stride=stride, ceil_mode=True)

    triage_code = pool((triage.clamp(min=-1.0) + 1.0) * mask)  # 0 none / unknown, 1 not, 2 actionable
    return {
        BatchKey.HEATMAP: pool(heat),
        BatchKey.CENTER_MASK: pool(mask),
        BatchKey.SIZE: pool(size.clamp(min=0.0) * mask),
        BatchKey.TRIAGE: triage_code - 1.0,
    }
