"""LUNA16 FROC / CPM on hand-built cases; every expected number is derived in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from lungcad.annotations.model import LunaAnnotation, LunaCandidate
from lungcad.errors import InputError
from lungcad.evaluate.froc import LUNA16_FP_RATES, ScanDetections, evaluate_froc, froc_of_detections

A = LunaAnnotation
C = LunaCandidate

# The first hand-computed case (used by the CLI test too): sensitivities (0, 0, .5, .5, .5, .5, .5).
CASE1_ANNOTATIONS = [A("s1", 0.0, 0.0, 0.0, 10.0), A("s1", 50.0, 0.0, 0.0, 6.0)]
CASE1_EXCLUDED = [A("s2", 20.0, 0.0, 0.0, -1.0)]
CASE1_CANDIDATES = [
    C("s1", 3.0, 4.0, 0.0, 0.9),
    C("s1", 1.0, 0.0, 0.0, 0.8),
    C("s1", 0.0, 1.0, 0.0, 0.6),
    C("s1", 100.0, 0.0, 0.0, 0.7),
    C("s2", 0.0, 0.0, 0.0, 0.5),
    C("s2", 23.0, 0.0, 0.0, 0.95),
]


def test_radius_duplicates_excluded_and_empty_scan() -> None:
    """Scan s1: nodule N1 at the origin (d 10, r 5), N2 at x = 50 (d 6, missed); s2 has no nodule but an
    excluded finding of unknown diameter (-1 -> 10 mm) at x = 20.

    c1 (3, 4, 0) is exactly 5 mm from N1: not < r, a miss -> FP 0.9.  c2, c3 hit N1: one TP at 0.8, one
    duplicate.  c4 far away: FP 0.7.  c5 in s2: FP 0.5.  c6 3 mm from the excluded finding: ignored.
    Sorted: FP 0.9, TP 0.8, FP 0.7, FP 0.5 -> curve (0, 0), (0.5, 0), (0.5, 0.5), (1, 0.5), (1.5, 0.5).
    1/8 and 1/4 lie on the flat start (0); from 1/2 on the sensitivity is 0.5 (flat after 1.5).
    """
    r = evaluate_froc(CASE1_ANNOTATIONS, CASE1_EXCLUDED, ["s1", "s2"], CASE1_CANDIDATES)
    np.testing.assert_array_equal(r.curve.fps_per_scan, [0.0, 0.5, 0.5, 1.0, 1.5])
    np.testing.assert_array_equal(r.curve.sensitivity, [0.0, 0.0, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(r.curve.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.5])
    assert r.sensitivities == (0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5)
    assert r.cpm == 2.5 / 7
    c = r.counts
    assert (c.n_scans, c.n_nodules, c.n_candidates, c.n_tp, c.n_fn, c.n_fp) == (2, 2, 6, 1, 1, 3)
    assert (c.n_ignored_excluded, c.n_duplicate_hits, c.n_dropped_by_cap, c.n_outside_series) == (1, 1, 0, 0)


def test_tied_scores_interpolate_along_the_diagonal() -> None:
    """One scan, two nodules; a TP and an FP share p = 0.8 -> one step from (0, 0) to (1, 0.5).

    Read-off: 1/8 -> 0.0625, 1/4 -> 0.125, 1/2 -> 0.25, >= 1 -> 0.5; CPM = (0.4375 + 4 x 0.5) / 7.
    """
    annotations = [A("s", 0.0, 0.0, 0.0, 4.0), A("s", 30.0, 0.0, 0.0, 4.0)]
    r = evaluate_froc(annotations, [], ["s"], [C("s", 0.0, 0.0, 1.0, 0.8), C("s", 9.0, 9.0, 9.0, 0.8)])
    assert r.sensitivities == (0.0625, 0.125, 0.25, 0.5, 0.5, 0.5, 0.5)
    assert r.cpm == pytest.approx(2.4375 / 7, abs=1e-15)


def test_vertical_step_reads_the_higher_sensitivity() -> None:
    """One scan, 2 nodules.  FP 0.9, TP 0.8, FP 0.7, FP 0.6, TP 0.5 -> (0,0) (1,0) (1,.5) (2,.5) (3,.5) (3,1).

    At exactly 1 FP/scan the curve rises from 0 to 0.5: 0.5 is read; at 4 and 8 (beyond 3) it is flat at 1.
    """
    annotations = [A("s", 0.0, 0.0, 0.0, 4.0), A("s", 30.0, 0.0, 0.0, 4.0)]
    probs = [(100.0, 0.9), (0.0, 0.8), (200.0, 0.7), (300.0, 0.6), (30.0, 0.5)]
    r = evaluate_froc(annotations, [], ["s"], [C("s", x, 0.0, 0.0, p) for x, p in probs])
    np.testing.assert_array_equal(r.curve.fps_per_scan, [0, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(r.curve.sensitivity, [0, 0, 0.5, 0.5, 0.5, 1.0])
    assert r.sensitivities == (0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0)


def test_fewer_than_8_fps_per_scan_extends_flat_not_to_one() -> None:
    """Docstring example: 2 scans, 2 nodules, one found at 0.9, one FP at 0.5: the missed nodule (p = -inf)
    never lifts the curve, which ends at (0.5, 0.5) and stays at 0.5 up to 8 FPs/scan."""
    annotations = [A("s1", 0.0, 0.0, 0.0, 10.0), A("s2", 0.0, 0.0, 0.0, 10.0)]
    r = evaluate_froc(
        annotations, [], ["s1", "s2"], [C("s1", 0.0, 0.0, 0.0, 0.9), C("s2", 50.0, 0.0, 0.0, 0.5)]
    )
    np.testing.assert_array_equal(r.curve.fps_per_scan, [0.0, 0.0, 0.5])
    np.testing.assert_array_equal(r.curve.sensitivity, [0.0, 0.5, 0.5])
    assert r.sensitivities == (0.5,) * 7 and r.cpm == 0.5
    assert r.curve.fps_per_scan[-1] < 8


def test_no_false_positive_at_all() -> None:
    r = evaluate_froc(
        [A("s", 0.0, 0.0, 0.0, 10.0), A("s", 40.0, 0.0, 0.0, 10.0)], [], ["s"], [C("s", 0.0, 0.0, 0.0, 0.3)]
    )
    assert r.sensitivities == (0.5,) * 7 and r.counts.n_fp == 0


def test_candidate_on_two_overlapping_nodules_counts_for_both_and_beats_an_excluded_hit() -> None:
    annotations = [A("s", 0.0, 0.0, 0.0, 10.0), A("s", 4.0, 0.0, 0.0, 10.0)]
    excluded = [A("s", 2.0, 0.0, 0.0, 10.0)]
    r = evaluate_froc(annotations, excluded, ["s"], [C("s", 2.0, 0.0, 0.0, 0.7)])
    assert (r.counts.n_tp, r.counts.n_fp, r.counts.n_ignored_excluded) == (2, 0, 0)
    assert r.sensitivities == (1.0,) * 7


def test_cap_keeps_only_candidates_strictly_above_the_cut() -> None:
    """cap 2 of probabilities (0.9, 0.5, 0.5, 0.1): the cut is the 3rd highest, 0.5, so only 0.9 stays."""
    cands = [
        C("s", 0.0, 0.0, 0.0, 0.5),
        C("s", 50.0, 0.0, 0.0, 0.9),
        C("s", 60.0, 0.0, 0.0, 0.5),
        C("s", 70.0, 0.0, 0.0, 0.1),
    ]
    r = evaluate_froc([A("s", 0.0, 0.0, 0.0, 10.0)], [], ["s"], cands, max_candidates_per_scan=2)
    assert (r.counts.n_candidates, r.counts.n_dropped_by_cap, r.counts.n_tp, r.counts.n_fp) == (1, 3, 0, 1)
    r = evaluate_froc([A("s", 0.0, 0.0, 0.0, 10.0)], [], ["s"], cands, max_candidates_per_scan=4)
    assert (r.counts.n_candidates, r.counts.n_tp, r.counts.n_fp) == (4, 1, 3)


def test_scans_outside_the_list_are_ignored() -> None:
    annotations = [A("s", 0.0, 0.0, 0.0, 10.0), A("other", 0.0, 0.0, 0.0, 10.0)]
    r = evaluate_froc(
        annotations, [], ["s", "empty"], [C("s", 0.0, 0.0, 0.0, 0.9), C("other", 0.0, 0.0, 0.0, 0.9)]
    )
    assert (r.counts.n_scans, r.counts.n_nodules, r.counts.n_outside_series, r.counts.n_fp) == (2, 1, 1, 0)


def test_bad_inputs() -> None:
    nod = [A("s", 0.0, 0.0, 0.0, 10.0)]
    with pytest.raises(InputError, match=r"the series list is empty"):
        evaluate_froc(nod, [], [], [])
    with pytest.raises(InputError, match=r"repeats a series UID"):
        evaluate_froc(nod, [], ["s", "s"], [])
    with pytest.raises(InputError, match=r"no annotated nodule in the evaluated scans"):
        evaluate_froc(nod, [], ["t"], [])
    with pytest.raises(InputError, match=r"max_candidates_per_scan must be >= 1, got 0"):
        evaluate_froc(nod, [], ["s"], [], max_candidates_per_scan=0)
    with pytest.raises(InputError, match=r"confidence must be in \(0, 1\), got 1.0"):
        evaluate_froc(nod, [], ["s"], [], confidence=1.0)


def test_bootstrap_one_scan_collapses_to_the_estimate() -> None:
    """With one scan every resample is that scan: mean = low = high = the point estimate."""
    annotations = [A("s", 0.0, 0.0, 0.0, 4.0), A("s", 30.0, 0.0, 0.0, 4.0)]
    r = evaluate_froc(
        annotations, [], ["s"], [C("s", 0.0, 0.0, 1.0, 0.8), C("s", 9.0, 9.0, 9.0, 0.8)], bootstrap_samples=50
    )
    b = r.bootstrap
    assert b is not None and (b.n_samples, b.n_skipped) == (50, 0)
    assert b.sensitivities_mean == pytest.approx(r.sensitivities, abs=1e-15)
    assert b.sensitivities_low == r.sensitivities == b.sensitivities_high
    assert b.cpm_low == r.cpm == b.cpm_high
    assert len(b.grid_fps) == 10000 and b.grid_fps[0] == 0.125 and b.grid_fps[-1] == 8.0


def test_bootstrap_is_seeded_and_skips_samples_without_nodules() -> None:
    """Two scans, one with the only nodule: a sample draws the empty scan twice with probability 1/4."""
    annotations = [A("s1", 0.0, 0.0, 0.0, 10.0)]
    cands = [C("s1", 0.0, 0.0, 0.0, 0.9), C("s2", 0.0, 0.0, 0.0, 0.8)]
    r1 = evaluate_froc(annotations, [], ["s1", "s2"], cands, bootstrap_samples=200, seed=7)
    r2 = evaluate_froc(annotations, [], ["s1", "s2"], cands, bootstrap_samples=200, seed=7)
    assert r1.bootstrap is not None and r2.bootstrap is not None
    assert r1.bootstrap.cpm_mean == r2.bootstrap.cpm_mean and r1.bootstrap.n_skipped == r2.bootstrap.n_skipped
    assert r1.bootstrap.n_samples + r1.bootstrap.n_skipped == 200
    assert 25 <= r1.bootstrap.n_skipped <= 75  # about 50 expected
    # Every kept sample detects its only nodule(s) at 0.9 before any FP: sensitivity 1 at every rate.
    assert r1.bootstrap.sensitivities_low == (1.0,) * 7 and r1.sensitivities == (1.0,) * 7


def test_default_rates_are_luna16s() -> None:
    assert LUNA16_FP_RATES == (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def test_froc_of_detections_is_the_hand_computed_case_from_records() -> None:
    """The same first case, given as in-memory ground truth and findings instead of LUNA16 rows."""
    from lungcad.data.records import NoduleGT
    from lungcad.types import Finding

    def gt(a: LunaAnnotation) -> NoduleGT:
        return NoduleGT((a.coord_x, a.coord_y, a.coord_z), a.diameter_mm)

    def finding(c: LunaCandidate) -> Finding:
        return Finding((c.coord_x, c.coord_y, c.coord_z), 5.0, probability=c.value)

    scans = [
        ScanDetections(
            uid,
            [gt(a) for a in CASE1_ANNOTATIONS if a.seriesuid == uid],
            [a.to_excluded() for a in CASE1_EXCLUDED if a.seriesuid == uid],
            [finding(c) for c in CASE1_CANDIDATES if c.seriesuid == uid],
        )
        for uid in ("s1", "s2")
    ]
    r = froc_of_detections(scans)
    assert r is not None and r.sensitivities == (0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5) and r.cpm == 2.5 / 7
    assert r.counts.n_ignored_excluded == 1 and r.counts.n_duplicate_hits == 1
    assert froc_of_detections([ScanDetections("s2", [], [], scans[1].findings)]) is None  # CPM undefined
