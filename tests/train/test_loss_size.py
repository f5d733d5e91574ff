"""Smooth L1 size loss on the log-diameter code, at centres only (hand-computed)."""

from __future__ import annotations

import math

import pytest
import torch

from lungcad.train.losses import size_loss


def _vox(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 1, len(values), 1, 1)


def test_three_centres_by_hand() -> None:
    # Targets 10, 5, 7 mm encode to ln(1) = 0, ln(0.5) = -0.693147, ln(0.7) = -0.356675.
    # Predictions 0, ln(0.5) + 0.05, 0.3 -> errors 0, 0.05, 0.656675; beta = 0.1:
    #   0                      (quadratic part: 0.5 x 0^2 / 0.1)
    #   0.5 x 0.05^2 / 0.1     = 0.0125     (|e| < beta: quadratic)
    #   0.656675 - 0.5 x 0.1   = 0.606675   (|e| >= beta: linear)
    # mean over 3 centres = 0.619175 / 3 = 0.206392.  The 4th voxel is no centre: its (absurd) values are
    # ignored.
    pred = _vox(0.0, math.log(0.5) + 0.05, 0.3, 50.0)
    target = _vox(10.0, 5.0, 7.0, 0.0)
    mask = _vox(1, 1, 1, 0)
    assert size_loss(pred, target, mask).item() == pytest.approx(0.206392, abs=1e-6)


def test_no_centre_gives_zero_with_a_graph() -> None:
    pred = torch.ones(1, 1, 2, 2, 2, requires_grad=True)
    loss = size_loss(pred, torch.zeros_like(pred), torch.zeros_like(pred))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) == 0.0
