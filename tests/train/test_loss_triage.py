"""Weighted BCE triage loss at labelled centres (hand-computed)."""

from __future__ import annotations

import math

import pytest
import torch

from lungcad.train.losses import triage_loss

LN2, LN3 = math.log(2.0), math.log(3.0)


def _vox(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 1, len(values), 1, 1)


def test_weighted_bce_by_hand() -> None:
    # logits [0, ln 3, -ln 3, 5, 2] -> p = [0.5, 0.75, 0.25, ., .]; targets [1, 0, 1, -1, 1];
    # centres [1, 1, 1, 1, 0]; pos_weight w = 2.  Voxel 4 has an unknown label (-1), voxel 5 is no centre.
    #   v1: t = 1: -w ln 0.5        = 2 x 0.693147 = 1.386294
    #   v2: t = 0: -ln(1 - 0.75)    = 1.386294
    #   v3: t = 1: -w ln 0.25       = 2 x 1.386294 = 2.772589
    #   mean over the 3 labelled centres = 5.545177 / 3 = 1.848392
    logits = _vox(0.0, LN3, -LN3, 5.0, 2.0)
    loss = triage_loss(logits, _vox(1, 0, 1, -1, 1), _vox(1, 1, 1, 1, 0), pos_weight=2.0)
    assert loss.item() == pytest.approx(8 * LN2 / 3, abs=1e-6)
    assert loss.item() == pytest.approx(1.848392, abs=1e-6)


def test_unweighted_matches_torch_bce_and_rejects_bad_weight() -> None:
    # pos_weight 1, one centre with t = 1 at p = 0.5: ln 2.
    assert triage_loss(_vox(0.0), _vox(1), _vox(1)).item() == pytest.approx(LN2, abs=1e-6)
    with pytest.raises(ValueError, match="pos_weight must be > 0, got 0.0"):
        triage_loss(_vox(0.0), _vox(1), _vox(1), pos_weight=0.0)
