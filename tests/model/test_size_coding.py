"""The size head's diameter coding ``s = ln(d / 10 mm)``."""

from __future__ import annotations

import math

import pytest
import torch

from lungcad.model import decode_diameter, encode_diameter


def test_worked_example_from_the_docstring() -> None:
    # 6 mm -> ln(0.6) = -0.5108; s = -0.4 -> 10 * e^-0.4 = 6.7032 mm.
    # float32 arithmetic: equal to within one or two ulps of the float64 values.
    assert encode_diameter(torch.tensor(6.0)).item() == pytest.approx(-0.5108256, abs=1e-6)
    assert decode_diameter(torch.tensor(-0.4)).item() == pytest.approx(6.7032005, abs=1e-5)


def test_round_trip_over_the_nodule_range() -> None:
    d = torch.linspace(3.0, 30.0, 28)
    torch.testing.assert_close(decode_diameter(encode_diameter(d)), d, rtol=1e-6, atol=0)
    assert encode_diameter(torch.tensor(10.0)).item() == 0.0


def test_clamps_keep_values_finite() -> None:
    # 0 mm (the background of a size map) encodes to ln(0.05); wild outputs decode within [0.5, 200] mm.
    assert encode_diameter(torch.tensor(0.0)).item() == pytest.approx(math.log(0.05), abs=1e-6)
    out = decode_diameter(torch.tensor([-1e4, 1e4]))
    torch.testing.assert_close(out, torch.tensor([0.5, 200.0]), rtol=1e-6, atol=0)
