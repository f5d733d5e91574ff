"""Bringing full-resolution targets to the head grid (2x2x2 block max-pool at centres)."""

from __future__ import annotations

import pytest
import torch

from lungcad.train.losses import infer_head_stride, to_head_resolution
from lungcad.types import BatchKey


def _targets() -> dict[BatchKey, torch.Tensor]:
    # A (1, 1, 5, 2, 2) patch; odd depth so the last head voxel covers z = 4 alone.
    #   nodule A: centre (z 2, y 1, x 0), 8 mm, actionable; its mask also labels (3, 1, 0) actionable
    #   nodule B: centre (z 4, y 0, x 0), 4 mm, not actionable
    #   a stray size value 30 at (0, 0, 0), which is no centre, must not leak into the head grid
    shape = (1, 1, 5, 2, 2)
    heat, mask, size = torch.zeros(shape), torch.zeros(shape, dtype=torch.uint8), torch.zeros(shape)
    triage = torch.full(shape, -1, dtype=torch.int8)
    heat[0, 0, 1, 1, 0] = heat[0, 0, 3, 1, 0] = 0.6
    heat[0, 0, 2, 1, 0] = heat[0, 0, 4, 0, 0] = 1.0
    mask[0, 0, 2, 1, 0] = mask[0, 0, 4, 0, 0] = 1
    size[0, 0, 2, 1, 0], size[0, 0, 4, 0, 0], size[0, 0, 0, 0, 0] = 8.0, 4.0, 30.0
    triage[0, 0, 2, 1, 0] = triage[0, 0, 3, 1, 0] = 1
    triage[0, 0, 4, 0, 0] = 0
    return {BatchKey.HEATMAP: heat, BatchKey.CENTER_MASK: mask, BatchKey.SIZE: size, BatchKey.TRIAGE: triage}


def test_stride_2_by_hand() -> None:
    # Head voxels along z cover [0, 1], [2, 3], [4]; along y and x one block [0, 1] each:
    #   heatmap  max 0.6 | 1.0 | 1.0
    #   mask     0       | 1   | 1
    #   size     0       | 8   | 4      (the stray 30 at z = 0 is not at a centre)
    #   triage   -1      | 1   | 0      (-1 = no labelled centre in the block)
    head = to_head_resolution(_targets(), stride=2)
    assert all(t.shape == (1, 1, 3, 1, 1) and t.dtype == torch.float32 for t in head.values())
    col = {k: v.flatten().tolist() for k, v in head.items()}
    assert col[BatchKey.HEATMAP] == pytest.approx([0.6, 1.0, 1.0])
    assert col[BatchKey.CENTER_MASK] == [0.0, 1.0, 1.0]
    assert col[BatchKey.SIZE] == [0.0, 8.0, 4.0]
    assert col[BatchKey.TRIAGE] == [-1.0, 1.0, 0.0]


def test_stride_1_reads_size_and_triage_at_centres_only() -> None:
    head = to_head_resolution(_targets(), stride=1)
    assert float(head[BatchKey.SIZE].sum()) == 12.0  # 8 + 4; the stray 30 is masked out
    # Only the two centres keep a label: the mask voxel (3, 1, 0) is not a centre.
    assert sorted(head[BatchKey.TRIAGE][head[BatchKey.TRIAGE] >= 0].tolist()) == [0.0, 1.0]


def test_infer_head_stride() -> None:
    assert infer_head_stride((5, 2, 2), (3, 1, 1)) == 2
    assert infer_head_stride((64, 64, 64), (64, 64, 64)) == 1
    with pytest.raises(ValueError, match=r"\(64, 64, 64\) does not map onto head shape \(30, 32, 32\)"):
        infer_head_stride((64, 64, 64), (30, 32, 32))
