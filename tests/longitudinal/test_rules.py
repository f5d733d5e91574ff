"""Hand-computed cases: Lung-RADS v2022 prior rules, the doubling-time model, the assignment."""

from __future__ import annotations

import math

import pytest

from lungcad.annotations.lungrads import (
    IntervalChange,
    interval_change,
    lung_rads_category,
    lung_rads_with_prior,
)
from lungcad.errors import InputError
from lungcad.longitudinal.growth import doubling_time
from lungcad.longitudinal.matching import MatchCandidate, match_nodules
from lungcad.types import LungRads


@pytest.mark.parametrize(
    ("delta", "want"),
    [
        (1.5, "stable"),
        (1.6, "growing"),
        (1.54, "stable"),
        (1.55, "growing"),
        (-1.5, "stable"),
        (-1.6, "shrinking"),
    ],
)
def test_growth_is_more_than_1_5_mm_on_tenths(delta: float, want: str) -> None:
    assert interval_change(delta).value == want


@pytest.mark.parametrize(
    ("d", "texture", "solid", "want"),
    [
        (3.9, "solid", None, "2"),
        (4.0, "solid", None, "3"),
        (5.9, "solid", None, "3"),
        (6.0, "solid", None, "4A"),
        (7.9, "solid", None, "4A"),
        (8.0, "solid", None, "4B"),
        (5.9, "part-solid", None, "3"),
        (6.0, "part-solid", None, "4A"),
        (9.0, "part-solid", 3.9, "4A"),
        (9.0, "part-solid", 4.0, "4B"),
        (29.9, "ground-glass", None, "2"),
        (30.0, "ground-glass", None, "3"),
        (12.0, "calcified", None, "1"),
    ],
)
def test_new_nodule_rows(d: float, texture: str, solid: float | None, want: str) -> None:
    category, rule = lung_rads_with_prior("new", d, texture, solid)
    assert category.value == want and rule


@pytest.mark.parametrize(
    ("prior", "now", "texture", "days", "want"),
    [
        (5.0, 7.0, "solid", 180, "4A"),  # growing < 8 mm
        (6.5, 8.1, "solid", 180, "4B"),  # growing >= 8 mm
        (10.0, 12.0, "ground-glass", 365, "2"),  # growing non-solid < 30 mm
        (7.0, 7.4, "solid", 182, "2"),  # stable category 3 -> 2 (docstring's worked example)
        (7.0, 9.0, "solid", 182, "4B"),  # the same nodule grown
        (10.0, 10.5, "solid", 90, "3"),  # stable 4A at >= 3 months -> 3
        (10.0, 10.5, "solid", 60, "4A"),  # < 3 months: size category
        (10.0, 10.5, "solid", None, "4A"),  # unknown interval: no step-down
        (7.0, 5.0, "solid", 180, "2"),  # shrinking 3 -> 2
        (18.0, 18.0, "solid", 365, "4B"),  # stable 4B: no step-down row
        (5.8, 6.1, "solid", 365, "3"),  # stable, crossed 6 mm: size category 3
        (5.0, 7.0, "solid", 730, "3"),  # 2 mm in 2 years: not v2022 growth -> size category
        (5.0, 7.0, "solid", None, "4A"),  # unknown interval: growth read as within 12 months
    ],
)
def test_matched_nodule_rows(prior: float, now: float, texture: str, days: int | None, want: str) -> None:
    change = interval_change(round(now, 1) - round(prior, 1))
    category, _ = lung_rads_with_prior(change, now, texture, prior_diameter_mm=prior, interval_days=days)
    assert category.value == want


def test_part_solid_growth_is_about_the_solid_component() -> None:
    kw = {"prior_diameter_mm": 10.0, "interval_days": 180}
    grew = lung_rads_with_prior("growing", 12.0, "part-solid", 5.0, prior_solid_component_mm=3.0, **kw)
    assert grew[0] is LungRads.C4B  # solid component 3 -> 5 mm: growing, >= 4 mm
    same = lung_rads_with_prior("growing", 12.0, "part-solid", 5.0, prior_solid_component_mm=4.8, **kw)
    assert same[0] is lung_rads_category(12.0, "part-solid", 5.0) is LungRads.C3


def test_no_prior_behaviour_unchanged_and_bad_input() -> None:
    assert lung_rads_category(7.0, "solid") is LungRads.C3
    with pytest.raises(InputError, match="resolved nodule"):
        lung_rads_with_prior(IntervalChange.RESOLVED, 5.0, "solid")
    with pytest.raises(InputError, match="prior_diameter_mm"):
        lung_rads_with_prior("stable", 5.0, "solid")


def test_doubling_time_worked_example() -> None:
    # growth module docstring: s = 0.10, 500 -> 1000 mm^3 in 365 days: 365 [261, 608] days
    d = doubling_time(500.0, 1000.0, 365, 0.10)
    assert d.days == 365.0 and d.log_ratio == pytest.approx(math.log(2), abs=1e-6)
    assert d.low_days == pytest.approx(260.8, abs=0.2) and d.high_days == pytest.approx(608.0, abs=0.5)
    small = doubling_time(500.0, 550.0, 365, 0.10)  # +10 %: the interval reaches "no growth"
    assert (
        small.days == pytest.approx(2654.5, abs=1) and small.high_days is None and small.low_days is not None
    )
    shrunk = doubling_time(500.0, 400.0, 365, 0.10)
    assert shrunk.days is None and shrunk.high_days is None
    with pytest.raises(InputError, match="positive interval"):
        doubling_time(500.0, 1000.0, 0, 0.1)


def _c(k: int, x: float, d: float, shown: bool = True) -> MatchCandidate:
    return MatchCandidate(k, (x, 0.0, 0.0), d, shown)


def test_assignment_is_global_and_rejects_far_or_very_different_pairs() -> None:
    # greedy nearest would give current 0 (x=5) the prior at x=4 and leave current 1 (x=1) worse off
    current = [_c(0, 5.0, 6.0), _c(1, 1.0, 6.0), _c(2, 100.0, 6.0), _c(3, 50.0, 20.0)]
    prior = [_c(0, 4.0, 6.0), _c(1, 8.0, 6.0), _c(2, 50.0, 5.0), _c(3, 200.0, 6.0)]
    got = {(m.current, m.prior) for m in match_nodules(current, prior)}
    assert (0, 1) in got and (1, 0) in got
    assert (2, None) in got and (None, 3) in got  # 95 mm away: new and resolved
    assert (3, None) in got and (None, 2) in got  # 5 -> 20 mm: ratio 4 > 3, not the same nodule


def test_weak_candidates_prevent_new_calls_but_never_pair_with_each_other() -> None:
    current = [_c(0, 0.0, 6.0), _c(1, 30.0, 6.0, shown=False)]
    prior = [_c(0, 1.0, 6.0, shown=False), _c(1, 31.0, 6.0, shown=False)]
    got = match_nodules(current, prior)
    assert [(m.current, m.prior) for m in got] == [(0, 0)]  # weak-weak (1, 1) is not reported
