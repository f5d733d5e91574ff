"""The calibrated volume error and its worked example (lungcad.longitudinal.growth docstring)."""

from __future__ import annotations

import math

import pytest

from lungcad.longitudinal.growth import VOLUME_ERROR, Z95, doubling_time


def test_calibrated_worked_example() -> None:
    # calibration cohorts seeds 2031 + 2033, pooled repeatability 0.172 (docs/compare.md, "Measured")
    assert VOLUME_ERROR == 0.17
    d = doubling_time(500.0, 1000.0, 365)  # the module default: VOLUME_ERROR
    assert d.days == 365.0 and d.log_ratio_sd == pytest.approx(0.240, abs=5e-4)
    assert d.low_days == pytest.approx(217.3, abs=0.1) and d.high_days == pytest.approx(1139.9, abs=0.1)
    month = doubling_time(500.0, 1000.0, 30)
    assert round(month.low_days) == 18 and round(month.high_days) == 94
    # bounded above only when V2 / V1 > exp(1.96 sqrt(2) s) = 1.60
    edge = math.exp(Z95 * math.sqrt(2.0) * VOLUME_ERROR)
    assert round(edge, 2) == 1.60
    assert doubling_time(500.0, 500.0 * edge * 1.001, 365).high_days is not None
    assert doubling_time(500.0, 500.0 * edge * 0.999, 365).high_days is None
