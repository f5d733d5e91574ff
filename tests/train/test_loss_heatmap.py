"""CenterNet penalty-reduced focal loss, hand-computed."""

from __future__ import annotations

import math

import pytest
import torch

from lungcad.train.losses import centernet_focal_loss

LN2, LN3 = math.log(2.0), math.log(3.0)


def _vox(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 1, len(values), 1, 1)


def test_one_peak_by_hand() -> None:
    # logits [0, ln 3, -ln 3] -> p = [0.5, 0.75, 0.25]; target y = [1, 0.5, 0]; alpha = 2, beta = 4.
    #   peak     (y = 1):   -(1 - 0.5)^2 ln 0.5                  = 0.25 x 0.693147             = 0.173287
    #   negative (y = 0.5): -(1 - 0.5)^4 x 0.75^2 x ln(1 - 0.75) = 0.0625 x 0.5625 x 1.386294  = 0.048737
    #   negative (y = 0):   -(1 - 0)^4 x 0.25^2 x ln(1 - 0.25)   = 0.0625 x 0.287682           = 0.017980
    #   one peak -> loss = 0.173287 + 0.048737 + 0.017980 = 0.240004
    loss = centernet_focal_loss(_vox(0.0, LN3, -LN3), _vox(1.0, 0.5, 0.0))
    expected = 0.25 * LN2 + 0.0625 * 0.5625 * 2 * LN2 + 0.0625 * math.log(4 / 3)
    assert expected == pytest.approx(0.240004, abs=1e-6)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_normalised_by_the_number_of_peaks() -> None:
    # Two peaks predicted at p = 0.5: each costs 0.25 ln 2 = 0.173287; the sum 0.346574 / 2 peaks = 0.173287.
    assert centernet_focal_loss(_vox(0.0, 0.0), _vox(1.0, 1.0)).item() == pytest.approx(0.25 * LN2, abs=1e-6)


def test_no_peak_divides_by_one() -> None:
    # A negative patch: two voxels y = 0 at p = 0.5: each 0.5^2 x ln 2 = 0.173287; sum / max(0, 1) = 0.346574.
    assert centernet_focal_loss(_vox(0.0, 0.0), _vox(0.0, 0.0)).item() == pytest.approx(0.5 * LN2, abs=1e-6)


def test_saturated_logits_stay_finite() -> None:
    # sigmoid(-100) underflows to 0 in float32; the log-sigmoid form keeps log p = -100 exactly:
    # peak loss = (1 - 0)^2 x 100 = 100.  A confident negative (p -> 0) costs 0.
    loss = centernet_focal_loss(_vox(-100.0, -100.0), _vox(1.0, 0.0))
    assert loss.item() == pytest.approx(100.0, rel=1e-6)
