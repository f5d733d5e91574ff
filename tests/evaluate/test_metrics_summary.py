"""Cohort summary and report files on one hand-built cohort; every expected number is derived inline.

Cohort (threshold 0.5 unless a test says otherwise):

scan a: nodules  a0 (0, 0, 0)   d 5  solid       not actionable  band <6    Lung-RADS 2
                 a1 (50, 0, 0)  d 10 part-solid  actionable      band 8-15  Lung-RADS 3 (solid part unknown)
                 a2 (100, 0, 0) d 20 no texture  actionable      band >=15  Lung-RADS 4B
        findings f0 (1, 0, 0)   p 0.9  d 6  triage 0.2   LR 2   -> match of a0: 1 mm off, +1 mm (+20 %)
                 f1 (50, 2, 0)  p 0.8  d 8  triage 0.7   LR 4A  -> match of a1: 2 mm off, -2 mm (-20 %)
                 f2 (100, 0, 3) p 0.3  d 20                     -> match of a2, below 0.5: a2 missed
                 f3 (200, 0, 0) p 0.6                           -> FP
                 f4 (50, 0, 1)  p 0.7                           -> duplicate on a1
scan b: nodule   b0 (0, 0, 0)   d 7  no texture  not actionable  band 6-8   Lung-RADS 3
        findings g0 (0, 0, 3)   p 0.95 d 7  triage 0.75  LR 3   -> match of b0: 3 mm off, 0 mm
                 g1 (30, 0, 0)  p 0.99 on an excluded finding  -> ignored
                 g2 (-50, 0, 0) p 0.2                           -> FP below 0.5
scan c: no nodule, no finding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lungcad.annotations.masks import BoxMask
from lungcad.annotations.model import ExcludedFinding, LunaAnnotation, LunaCandidate
from lungcad.data.records import NoduleGT
from lungcad.errors import InputError
from lungcad.evaluate.froc import evaluate_froc
from lungcad.evaluate.metrics import ScanMatch, detected_pairs, match_findings
from lungcad.evaluate.summary import (
    LUNG_RADS_CATEGORIES,
    EvaluationSummary,
    dice_stats,
    lung_rads_confusion,
    reliability,
    summarise,
)
from lungcad.evaluate.summary_report import write_report
from lungcad.types import Finding


def _f(
    xyz: tuple[float, float, float], p: float, d: float = 5.0, tri: float | None = None, lr=None
) -> Finding:
    return Finding(center_xyz_mm=xyz, diameter_mm=d, probability=p, triage_probability=tri, lung_rads=lr)


@pytest.fixture()
def cohort() -> list[ScanMatch]:
    a = match_findings(
        [
            NoduleGT((0.0, 0.0, 0.0), 5.0, actionable=False, texture="solid"),
            NoduleGT((50.0, 0.0, 0.0), 10.0, actionable=True, texture="part-solid"),
            NoduleGT((100.0, 0.0, 0.0), 20.0, actionable=True),
        ],
        [
            _f((1.0, 0.0, 0.0), 0.9, 6.0, 0.2, "2"),
            _f((50.0, 2.0, 0.0), 0.8, 8.0, 0.7, "4A"),
            _f((100.0, 0.0, 3.0), 0.3, 20.0),
            _f((200.0, 0.0, 0.0), 0.6),
            _f((50.0, 0.0, 1.0), 0.7),
        ],
        scan_id="a",
    )
    b = match_findings(
        [NoduleGT((0.0, 0.0, 0.0), 7.0)],
        [_f((0.0, 0.0, 3.0), 0.95, 7.0, 0.75, "3"), _f((30.0, 0.0, 0.0), 0.99), _f((-50.0, 0.0, 0.0), 0.2)],
        [ExcludedFinding((30.0, 0.0, 0.0), -1.0)],
        scan_id="b",
    )
    c = match_findings([], [], scan_id="c")
    return [a, b, c]


def test_counts_and_sensitivity_at_the_threshold(cohort: list[ScanMatch]) -> None:
    """Kept (p >= 0.5): f0 f1 f3 f4 g0 g1 = 6; FP f3 only -> 1 / 3 scans; 3 of 4 nodules found."""
    s = summarise(cohort)
    assert (s.threshold, s.n_scans, s.n_nodules, s.n_detected, s.n_findings) == (0.5, 3, 4, 3, 6)
    assert (s.n_false_positives, s.n_duplicates, s.n_ignored) == (1, 1, 1)
    assert s.sensitivity == 0.75
    assert s.fps_per_scan == 1 / 3
    # at 0.25, f2 (0.3) detects a2; g2 (0.2) is still below
    low = summarise(cohort, threshold=0.25)
    assert (low.n_detected, low.n_findings, low.n_false_positives, low.sensitivity) == (4, 7, 1, 1.0)


def test_sensitivity_by_size_band_and_texture(cohort: list[ScanMatch]) -> None:
    """Bands: <6 a0 1/1, 6-8 b0 1/1, 8-15 a1 1/1, >=15 a2 0/1.
    Textures: unknown = a2 (missed) + b0 (found) -> 1/2."""
    s = summarise(cohort)
    assert [(g.group, g.found, g.total, g.sensitivity) for g in s.by_size] == [
        ("<6", 1, 1, 1.0),
        ("6-8", 1, 1, 1.0),
        ("8-15", 1, 1, 1.0),
        (">=15", 0, 1, 0.0),
    ]
    assert [(g.group, g.found, g.total, g.sensitivity) for g in s.by_texture] == [
        ("solid", 1, 1, 1.0),
        ("part-solid", 1, 1, 1.0),
        ("ground-glass", 0, 0, None),
        ("calcified", 0, 0, None),
        ("unknown", 1, 2, 0.5),
    ]


def test_localisation_and_size_errors(cohort: list[ScanMatch]) -> None:
    """Distances [1, 2, 3]: mean 2, median 2, p95 = 2 + 0.9 (3 - 2) = 2.9 (linear between order stats).
    Size errors [+1, -2, 0] mm = [+20, -20, 0] %: mean |e| 1 mm / 40/3 %, mean e -1/3 mm / 0 %,
    median |e| 1 mm / 20 %.
    """
    s = summarise(cohort)
    loc = s.localisation_mm
    assert (loc.n, loc.mean, loc.median) == (3, 2.0, 2.0)
    assert loc.p95 == pytest.approx(2.9, rel=1e-15)
    e = s.size_error
    assert (e.n, e.mean_abs_mm, e.median_abs_mm, e.median_abs_pct) == (3, 1.0, 1.0, 20.0)
    assert e.mean_signed_mm == pytest.approx(-1 / 3, rel=1e-15)
    assert e.mean_abs_pct == pytest.approx(40 / 3, rel=1e-15)
    assert e.mean_signed_pct == pytest.approx(0.0, abs=1e-12)


def test_triage_auc_accuracy_and_ece(cohort: list[ScanMatch]) -> None:
    """Pairs (triage, actionable): a0 (0.2, 0), a1 (0.7, 1), b0 (0.75, 0).
    AUC: 0.7 beats 0.2, loses to 0.75 -> 1/2.  Accuracy at 0.5: a0 right, a1 right, b0 wrong -> 2/3.
    ECE (10 bins): bin 2 {0.2: 0} -> 1/3 x 0.2; bin 7 {0.7: 1, 0.75: 0} -> 2/3 x |0.5 - 0.725| -> 0.21666...
    """
    t = summarise(cohort).triage
    assert (t.n, t.n_actionable, t.n_missing, t.auc) == (3, 1, 0, 0.5)
    assert t.accuracy == pytest.approx(2 / 3, rel=1e-15)
    assert t.reliability.ece == pytest.approx(0.2 / 3 + 2 / 3 * 0.225, rel=1e-12)
    assert t.reliability.count == (1, 2)
    assert t.reliability.bin_centre == pytest.approx((0.25, 0.75), rel=1e-15)
    assert t.reliability.accuracy == (0.0, 0.5)


def test_triage_without_both_classes_has_no_auc(cohort: list[ScanMatch]) -> None:
    """At 0.85 only a0 (0.9) and b0 (0.95) are detected, both not actionable -> AUC None; a1 is gone."""
    t = summarise(cohort, threshold=0.85).triage
    assert (t.n, t.n_actionable, t.auc, t.accuracy) == (2, 0, None, 0.5)


def test_lung_rads_confusion_matrix(cohort: list[ScanMatch]) -> None:
    """Pairs (truth, predicted): a0 (2, 2), a1 (3, 4A), b0 (3, 3) -> accuracy 2/3."""
    c = summarise(cohort).lung_rads
    assert c.categories == ("1", "2", "3", "4A", "4B", "4X")
    expected = np.zeros((6, 6), dtype=int)
    expected[1, 1] = expected[2, 3] = expected[2, 2] = 1
    assert c.matrix == tuple(tuple(r) for r in expected.tolist())
    assert (c.n, c.n_missing) == (3, 0)
    assert c.accuracy == pytest.approx(2 / 3, rel=1e-15)


def test_lung_rads_confusion_counts_missing_and_rejects_bad_input() -> None:
    c = lung_rads_confusion(["4B", "4B", "1", "2"], ["4B", "4X", None, "2"])
    assert (c.n, c.n_missing, c.accuracy) == (3, 1, 2 / 3)
    assert c.matrix[LUNG_RADS_CATEGORIES.index("4B")][LUNG_RADS_CATEGORIES.index("4X")] == 1
    assert lung_rads_confusion([], []).accuracy is None
    with pytest.raises(InputError, match=r"2 true but 1 predicted categories"):
        lung_rads_confusion(["2", "3"], ["2"])
    with pytest.raises(InputError, match=r"unknown Lung-RADS category '5'"):
        lung_rads_confusion(["2"], ["5"])


def test_detection_calibration_uses_every_labelled_finding(cohort: list[ScanMatch]) -> None:
    """TP/FP without a threshold: f0 .9 TP, f1 .8 TP, f2 .3 TP, f3 .6 FP, g0 .95 TP, g2 .2 FP (duplicate f4
    and ignored g1 have no label).  Bins 2 {.2: 0}, 3 {.3: 1}, 6 {.6: 0}, 8 {.8: 1}, 9 {.9, .95: 1}."""
    r = summarise(cohort).detection_calibration
    assert (r.n, r.n_bins, r.count) == (6, 10, (1, 1, 1, 1, 2))
    assert r.accuracy == (0.0, 1.0, 0.0, 1.0, 1.0)
    # |0 - .2| + |1 - .3| + |0 - .6| + |1 - .8| + 2 x |1 - .925|, over 6
    assert r.ece == pytest.approx((0.2 + 0.7 + 0.6 + 0.2 + 0.15) / 6, rel=1e-12)


def test_dice_of_segmentations(cohort: list[ScanMatch]) -> None:
    """Half-overlapping cubes 0.5, identical cubes 1.0, two empty masks undefined -> n 2, mean 0.75."""
    cube, empty = np.ones((2, 2, 2), dtype=bool), np.zeros((2, 2, 2), dtype=bool)
    segs = [
        (BoxMask((0, 0, 0), cube), BoxMask((1, 0, 0), cube)),
        (BoxMask((3, 3, 3), cube), BoxMask((3, 3, 3), cube)),
        (BoxMask((0, 0, 0), empty), BoxMask((9, 9, 9), empty)),
    ]
    d = summarise(cohort, segmentations=segs).dice
    assert (d.n, d.n_undefined, d.mean, d.median, d.min) == (2, 1, 0.75, 0.75, 0.5)
    assert dice_stats([]).mean is None
    with pytest.raises(InputError, match=r"segmentation 0 must be a \(predicted, truth\) pair"):
        dice_stats([((0, 0, 0),)])  # type: ignore[list-item]
    with pytest.raises(InputError, match=r"segmentation 0: predicted must be a BoxMask .*, got a tuple"):
        dice_stats([((0, 0, 0), cube)])  # type: ignore[list-item]


def test_empty_cohort_parts_are_none() -> None:
    """One scan, one missed nodule, no findings: no pairs, so every per-pair statistic is empty."""
    s = summarise([match_findings([NoduleGT((0.0, 0.0, 0.0), 6.0)], [])])
    assert (s.sensitivity, s.fps_per_scan, s.localisation_mm.mean, s.size_error.mean_abs_mm) == (
        0.0,
        0.0,
        None,
        None,
    )
    assert (s.triage.auc, s.triage.accuracy, s.triage.reliability.ece, s.lung_rads.accuracy) == (None,) * 4
    assert s.detection_calibration.n == 0


def test_summary_rejects_bad_input(cohort: list[ScanMatch]) -> None:
    with pytest.raises(InputError, match=r"no scans to summarise"):
        summarise([])
    with pytest.raises(InputError, match=r"threshold must be in \[0, 1\], got -0.1"):
        summarise(cohort, threshold=-0.1)
    with pytest.raises(InputError, match=r"n_bins must be a positive integer, got 0"):
        summarise(cohort, n_bins=0)
    with pytest.raises(InputError, match=r"reliability: 2 probabilities but 1 labels"):
        reliability([0.1, 0.2], [1])


def _froc() -> object:
    ann = [LunaAnnotation("a", 0.0, 0.0, 0.0, 5.0), LunaAnnotation("b", 0.0, 0.0, 0.0, 7.0)]
    cand = [LunaCandidate("a", 1.0, 0.0, 0.0, 0.9), LunaCandidate("b", 50.0, 0.0, 0.0, 0.4)]
    return evaluate_froc(ann, [], ["a", "b", "c"], cand, bootstrap_samples=20, seed=1)


def test_to_dict_round_trips_through_json(cohort: list[ScanMatch]) -> None:
    s = summarise(cohort, froc=_froc())  # type: ignore[arg-type]
    d = s.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["froc"]["cpm"] == 0.5
    assert d["froc"]["counts"]["n_tp"] == 1
    assert set(d["froc"]["bootstrap"]) >= {"cpm_low", "cpm_high", "sensitivities_low", "sensitivities_high"}
    assert d["by_size"][3] == {"group": ">=15", "found": 0, "total": 1, "sensitivity": 0.0}
    assert d["lung_rads"]["matrix"][2] == [0, 0, 1, 1, 0, 0]
    assert d["triage"]["reliability"]["count"] == [1, 2]
    assert summarise(cohort).to_dict()["froc"] is None


def test_write_report_files(cohort: list[ScanMatch], tmp_path: Path) -> None:
    s = summarise(cohort, froc=_froc())  # type: ignore[arg-type]
    paths = write_report(s, tmp_path / "out")
    names = sorted(p.name for p in paths.values())
    assert names == [
        "froc.png",
        "lung_rads_confusion.png",
        "reliability_detection.png",
        "reliability_triage.png",
        "sensitivity_by_size.png",
        "summary.json",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names  # no temporary files left
    for p in paths.values():
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = json.loads(paths["summary"].read_text(encoding="utf-8"))
    assert loaded == json.loads(json.dumps(s.to_dict()))
    assert loaded["sensitivity"] == 0.75


def test_write_report_without_pairs_or_froc(tmp_path: Path) -> None:
    """Figures without data are still written, so the report's file set is fixed; no froc.png without FROC."""
    s: EvaluationSummary = summarise([match_findings([NoduleGT((0.0, 0.0, 0.0), 6.0)], [])])
    paths = write_report(s, tmp_path)
    assert "froc" not in paths
    assert all(p.is_file() for p in paths.values())
    assert json.loads(paths["summary"].read_text(encoding="utf-8"))["localisation_mm"]["mean"] is None


def test_detected_pairs_feed_segmentations(cohort: list[ScanMatch]) -> None:
    """The caller walks ``detected_pairs`` to build one (predicted, truth) pair per detected nodule."""
    assert [(p.scan_id, p.gt_index, p.finding_index) for p in detected_pairs(cohort)] == [
        ("a", 0, 0),
        ("a", 1, 1),
        ("b", 0, 0),
    ]
