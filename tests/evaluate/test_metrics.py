"""Per-nodule matching and metric primitives on hand-built cases; every expected number is derived inline."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

from lungcad.annotations.masks import BoxMask
from lungcad.annotations.model import ExcludedFinding
from lungcad.data.records import NoduleGT
from lungcad.errors import InputError
from lungcad.evaluate.metrics import (
    FindingStatus,
    ScanMatch,
    box_dice,
    detected_pairs,
    dice,
    match_findings,
    roc_auc,
    size_band,
)
from lungcad.types import Finding

TP, DUP, IGN, FP = (
    FindingStatus.TRUE_POSITIVE,
    FindingStatus.DUPLICATE,
    FindingStatus.IGNORED,
    FindingStatus.FALSE_POSITIVE,
)


B = BoxMask


def F(x: float, y: float, z: float, p: float, d: float = 5.0, **kw: object) -> Finding:
    return Finding(center_xyz_mm=(x, y, z), diameter_mm=d, probability=p, **kw)  # type: ignore[arg-type]


def G(x: float, y: float, z: float, d: float, **kw: object) -> NoduleGT:
    return NoduleGT(center_xyz_mm=(x, y, z), diameter_mm=d, **kw)  # type: ignore[arg-type]


# --- matching --------------------------------------------------------------------------------------------


def test_finding_exactly_on_the_radius_misses() -> None:
    """Nodule d 10 (r 5) at the origin: (3, 4, 0) is exactly 5 mm away -> not < r, an FP; (3, 3.9, 0) hits."""
    m = match_findings([G(0, 0, 0, 10.0)], [F(3, 4, 0, 0.9)])
    assert m.gt_match == (None,)
    assert m.status == (FP,)
    m = match_findings([G(0, 0, 0, 10.0)], [F(3, 4, 0, 0.9), F(3, 3.9, 0, 0.1)])
    assert m.gt_match == (1,)
    assert m.status == (FP, TP)


def test_two_findings_on_one_nodule_give_one_tp_at_the_higher_probability() -> None:
    """Both hit; the 0.8 one is the match (though farther), the 0.6 one a duplicate (not an FP)."""
    m = match_findings([G(0, 0, 0, 10.0)], [F(0, 0, 0.5, 0.6), F(2, 0, 0, 0.8)], scan_id="s")
    assert m.gt_match == (1,)
    assert m.status == (DUP, TP)
    assert m.scan_id == "s"


def test_equal_probabilities_prefer_the_nearer_finding_then_the_lower_index() -> None:
    m = match_findings([G(0, 0, 0, 10.0)], [F(3, 0, 0, 0.7), F(1, 0, 0, 0.7), F(-1, 0, 0, 0.7)])
    assert m.gt_match == (1,)
    assert m.status == (DUP, TP, DUP)


def test_excluded_hit_is_ignored_and_unknown_diameter_is_10_mm() -> None:
    """Excluded at x = 20, d -1 -> 10 mm (r 5): 3 mm away ignored, exactly 5 mm away an FP.
    Excluded at x = -20, d 4 (r 2): 3 mm away is outside -> FP."""
    excluded = [ExcludedFinding((20.0, 0.0, 0.0), -1.0), ExcludedFinding((-20.0, 0.0, 0.0), 4.0)]
    findings = [F(23, 0, 0, 0.9), F(25, 0, 0, 0.9), F(-23, 0, 0, 0.9), F(-21, 0, 0, 0.5)]
    m = match_findings([], findings, excluded)
    assert m.gt_match == ()
    assert m.status == (IGN, FP, FP, IGN)
    m = match_findings([], findings[:2], excluded, excluded_unknown_diameter_mm=12.0)  # r 6: both inside
    assert m.status == (IGN, IGN)


def test_a_nodule_hit_takes_precedence_over_an_excluded_hit() -> None:
    """A duplicate that also lies on an excluded finding stays a duplicate (nodules are processed first)."""
    m = match_findings(
        [G(0, 0, 0, 10.0)], [F(0, 0, 0, 0.9), F(2, 0, 0, 0.5)], [ExcludedFinding((2.0, 0.0, 0.0), -1.0)]
    )
    assert m.status == (TP, DUP)


def test_one_finding_is_the_match_of_two_overlapping_nodules() -> None:
    """As in LUNA16 a finding hitting two nodules counts for both."""
    m = match_findings([G(0, 0, 0, 10.0), G(4, 0, 0, 10.0)], [F(2, 0, 0, 0.9), F(100, 0, 0, 0.1)])
    assert m.gt_match == (0, 0)
    assert m.status == (TP, FP)


def test_no_findings_and_no_nodules() -> None:
    m = match_findings([G(0, 0, 0, 6.0)], [])
    assert (m.gt_match, m.status) == ((None,), ())
    m = match_findings([], [])
    assert (m.gt, m.findings, m.gt_match, m.status) == ((), (), (), ())


def test_detected_pairs_apply_the_threshold_after_matching() -> None:
    """Matches 0.4 (nodule 0) and 0.5 (nodule 1): at 0.5 only nodule 1 is detected (>= is inclusive)."""
    m = match_findings(
        [G(0, 0, 0, 10.0), G(50, 0, 0, 10.0)], [F(0, 0, 0, 0.4), F(50, 0, 3, 0.5)], scan_id="a"
    )
    pairs = detected_pairs([m], 0.5)
    assert [(p.scan_index, p.gt_index, p.finding_index, p.scan_id) for p in pairs] == [(0, 1, 1, "a")]
    assert pairs[0].distance_mm == 3.0
    assert len(detected_pairs([m], 0.0)) == 2
    with pytest.raises(InputError, match=r"threshold must be in \[0, 1\], got 1.5"):
        detected_pairs([m], 1.5)


def _stand_in(p: float = 0.5, **kw: object) -> SimpleNamespace:
    """A duck-typed finding, to reach match_findings' own checks with values ``Finding`` may refuse."""
    fields = {"center_xyz_mm": (0.0, 0.0, 0.0), "diameter_mm": 5.0, "probability": p}
    return SimpleNamespace(**(fields | {"triage_probability": None, "lung_rads": None} | kw))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            lambda: ([SimpleNamespace(center_xyz_mm=(0, 0, 0), diameter_mm=5.0)], [], []),
            r"must be a NoduleGT",
        ),
        (lambda: ([], [_stand_in(1.5)], []), r"finding 0 probability must be in \[0, 1\], got 1.5"),
        (lambda: ([], [_stand_in(math.nan)], []), r"finding 0 probability must be in \[0, 1\], got nan"),
        (lambda: ([], [_stand_in(triage_probability=-0.1)], []), r"triage_probability must be in \[0, 1\]"),
        (lambda: ([], [_stand_in(lung_rads="5")], []), r"unknown Lung-RADS category '5'"),
        (lambda: ([], [_stand_in(diameter_mm=math.inf)], []), r"finding 0 diameter must be finite"),
        (lambda: ([], [_stand_in(center_xyz_mm=(0, 1))], []), r"finding 0 centre must be three finite"),
        (lambda: ([], [], [((1.0, 2.0, 3.0), 5.0)]), r"excluded entry 0 must be an ExcludedFinding"),
    ],
)
def test_bad_match_inputs_are_rejected(inputs: Callable[[], tuple], message: str) -> None:
    gt, findings, excluded = inputs()
    with pytest.raises(InputError, match=message):
        match_findings(gt, findings, excluded, scan_id="s9")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: G(0, 0, 0, 0.0), r"nodule diameter must be > 0 mm, got 0.0"),
        (lambda: G(0, 0, math.nan, 5.0), r"nodule centre must be three finite"),
        (lambda: G(0, 0, 0, 5.0, texture="Solid"), r"unknown texture 'Solid'"),
        (lambda: ExcludedFinding((1.0, 2.0), 5.0), r"excluded finding centre must be three finite"),
    ],
)
def test_bad_ground_truth_is_rejected_when_built(build: Callable[[], object], message: str) -> None:
    """The ground-truth records check themselves, so a bad value never reaches the matcher."""
    with pytest.raises(InputError, match=message):
        build()


def test_unknown_diameter_override_must_be_positive() -> None:
    with pytest.raises(InputError, match=r"excluded_unknown_diameter_mm must be > 0, got 0.0"):
        match_findings(
            [], [F(0, 0, 0, 0.5)], [ExcludedFinding((0.0, 0.0, 0.0))], excluded_unknown_diameter_mm=0.0
        )


def test_scan_match_rejects_mismatched_lengths() -> None:
    with pytest.raises(InputError, match=r"gt_match has 0 entries for 1 nodules"):
        ScanMatch((G(0, 0, 0, 5.0),), (), (), ())
    with pytest.raises(InputError, match=r"status has 0 entries for 1 findings"):
        ScanMatch((), (F(0, 0, 0, 0.5),), (), ())
    with pytest.raises(InputError, match=r"nodule 0 is matched to finding 3, but there are 1 findings"):
        ScanMatch((G(0, 0, 0, 5.0),), (F(0, 0, 0, 0.5),), (3,), (TP,))


# --- size bands ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("diameter", "band"),
    [(3.0, "<6"), (5.99, "<6"), (6.0, "6-8"), (7.99, "6-8"), (8.0, "8-15"), (14.99, "8-15"), (15.0, ">=15")],
)
def test_size_band_edges_are_half_open(diameter: float, band: str) -> None:
    assert size_band(diameter) == band


# --- Dice ------------------------------------------------------------------------------------------------


def test_dice_of_known_overlap() -> None:
    """|A| = 4, |B| = 6, |A & B| = 3 -> 2 * 3 / 10 = 0.6."""
    a = np.zeros((1, 2, 5), dtype=bool)
    b = np.zeros((1, 2, 5), dtype=bool)
    a[0, 0, :4] = True
    b[0, 0, 1:] = True
    b[0, 1, :2] = True
    assert dice(a, b) == 0.6
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    assert math.isnan(dice(np.zeros_like(a), np.zeros_like(a)))


def test_dice_rejects_bad_masks() -> None:
    with pytest.raises(InputError, match=r"masks must have the same shape, got \(2,\) and \(3,\)"):
        dice(np.ones(2, dtype=bool), np.ones(3, dtype=bool))
    with pytest.raises(InputError, match=r"must be a boolean array, got dtype float64"):
        dice(np.ones(2), np.ones(2, dtype=bool))


def test_box_dice_of_two_shifted_cubes() -> None:
    """2^3 cubes at z offsets 0 and 1 share one 2 x 2 slab of 4 voxels: 2 * 4 / (8 + 8) = 0.5."""
    cube = np.ones((2, 2, 2), dtype=bool)
    assert box_dice(B((0, 0, 0), cube), B((1, 0, 0), cube)) == 0.5
    assert box_dice(B((0, 0, 0), cube), B((2, 0, 0), cube)) == 0.0  # touching boxes, no overlap
    assert box_dice(B((5, 5, 5), cube), B((5, 5, 5), cube)) == 1.0


def test_box_dice_of_boxes_of_different_sizes() -> None:
    """A full 3^3 box at (10, 10, 10) contains the single voxel at (11, 11, 11): 2 * 1 / (27 + 1)."""
    big, one = np.ones((3, 3, 3), dtype=bool), np.ones((1, 1, 1), dtype=bool)
    assert box_dice(B((10, 10, 10), big), B((11, 11, 11), one)) == 2.0 / 28.0


def test_box_dice_equals_dice_in_the_union_box() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((4, 5, 6)) > 0.5, rng.random((6, 3, 4)) > 0.5
    off_a, off_b = (2, 0, 1), (0, 3, 4)
    union = np.zeros((6, 6, 8), dtype=bool), np.zeros((6, 6, 8), dtype=bool)
    union[0][2:6, 0:5, 1:7] = a
    union[1][0:6, 3:6, 4:8] = b
    assert box_dice(B(off_a, a), B(off_b, b)) == pytest.approx(dice(*union), rel=1e-15)


def test_box_dice_of_two_empty_masks_is_undefined() -> None:
    empty = np.zeros((2, 2, 2), dtype=bool)
    assert box_dice(B((0, 0, 0), empty), B((0, 0, 0), empty)) is None
    assert box_dice(B((0, 0, 0), empty), B((0, 0, 0), ~empty)) == 0.0


def test_box_dice_rejects_bad_boxes() -> None:
    cube = np.ones((2, 2, 2), dtype=bool)
    with pytest.raises(InputError, match=r"predicted needs an integer \(z, y, x\) offset"):
        box_dice(B((0.5, 0, 0), cube), B((0, 0, 0), cube))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"truth needs an integer \(z, y, x\) offset and a 3-D mask"):
        box_dice(B((0, 0, 0), cube), B((0, 0, 0), cube[0]))
    with pytest.raises(InputError, match=r"truth mask must be a boolean array, got dtype uint8"):
        box_dice(B((0, 0, 0), cube), B((0, 0, 0), cube.astype(np.uint8)))
    with pytest.raises(InputError, match=r"predicted must be a BoxMask \(offset_zyx, mask\), got a ndarray"):
        box_dice(cube, B((0, 0, 0), cube))  # type: ignore[arg-type]
    # a bare (offset, mask) pair is no BoxMask: there is one box-mask type, annotations.masks.BoxMask
    with pytest.raises(InputError, match=r"truth must be a BoxMask \(offset_zyx, mask\), got a tuple"):
        box_dice(B((0, 0, 0), cube), ((0, 0, 0), cube))  # type: ignore[arg-type]


# --- ROC AUC ---------------------------------------------------------------------------------------------


def test_auc_by_hand() -> None:
    """Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 0.35 wins 1 of 2, 0.8 wins 2 -> 3 / 4."""
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75


def test_auc_counts_ties_as_one_half() -> None:
    """Positive 0.5 ties negative 0.5 (0.5) and beats 0.2 (1); positive 0.9 beats both (2) -> 3.5 / 4."""
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == 0.875
    assert roc_auc([0.3, 0.3, 0.3], [True, False, True]) == 0.5
    assert roc_auc([0.9, 0.1], [False, True]) == 0.0


def test_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 40) / 4.0  # many ties
    y = rng.random(40) > 0.6
    pairs = [(sp > sn) + 0.5 * (sp == sn) for sp in s[y] for sn in s[~y]]
    assert roc_auc(s, y) == pytest.approx(float(np.mean(pairs)), rel=1e-15)


def test_auc_is_none_with_one_class() -> None:
    assert roc_auc([0.2, 0.4], [1, 1]) is None
    assert roc_auc([0.2], [0]) is None
    assert roc_auc([], []) is None


def test_auc_rejects_bad_inputs() -> None:
    with pytest.raises(InputError, match=r"3 scores but 2 labels"):
        roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(InputError, match=r"labels must be 0/1 or booleans, got \[0, 2\]"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(InputError, match=r"scores must be finite"):
        roc_auc([0.1, math.nan], [0, 1])
