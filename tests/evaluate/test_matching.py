"""One LUNA16 matcher: FROC and the per-nodule metrics decide every finding the same way, as the official
script does."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lungcad.annotations.model import ExcludedFinding, LunaAnnotation, LunaCandidate, NoduleGT
from lungcad.config import EvaluateConfig, LungcadConfig
from lungcad.data.records import ScanRecord
from lungcad.evaluate import cohort as eval_cohort
from lungcad.evaluate.froc import evaluate_froc
from lungcad.evaluate.matching import FindingStatus, luna16_match
from lungcad.evaluate.metrics import match_findings
from lungcad.evaluate.runner import CohortRun, ScanEvaluation
from lungcad.types import Finding, ScanResult

TP, DUP, IGN, FP = (
    FindingStatus.TRUE_POSITIVE,
    FindingStatus.DUPLICATE,
    FindingStatus.IGNORED,
    FindingStatus.FALSE_POSITIVE,
)


def test_docstring_worked_example() -> None:
    m = luna16_match(
        np.array([[0.0, 0.0, 0.0]]),
        np.array([10.0]),
        np.array([[0.0, 0.0, 3.0], [2.0, 0.0, 0.0], [4.0, 4.0, 0.0]]),
        np.array([0.6, 0.8, 0.9]),
        np.array([[5.0, 5.0, 0.0]]),
        np.array([5.0]),
    )
    assert m.best.tolist() == [1] and m.n_hits.tolist() == [2]
    assert m.status == (DUP, TP, IGN)


def test_boundary_is_decided_on_squares_in_both_matchers() -> None:
    """Nodule d 6.2 (r 3.1) at the origin, finding at (-0.04, -2.28, 2.1): squared distance 9.61 (in
    floats 9.61) is below r^2 = 9.610000000000001, so the official script counts a hit, although
    sqrt(9.61) = 3.1 is not below 3.1.  The per-nodule matcher used to compare square roots and called
    this finding a false positive while FROC counted it a true positive."""
    xyz = (-0.04, -2.28, 2.1)
    assert math.sqrt(sum(v * v for v in xyz)) == 3.1 and sum(v**2 for v in xyz) < 3.1**2
    m = match_findings([NoduleGT((0.0, 0.0, 0.0), 6.2)], [Finding(xyz, 5.0, probability=0.7)])
    assert m.gt_match == (0,) and m.status == (TP,)
    r = evaluate_froc([LunaAnnotation("s", 0.0, 0.0, 0.0, 6.2)], [], ["s"], [LunaCandidate("s", *xyz, 0.7)])
    assert (r.counts.n_tp, r.counts.n_fp) == (1, 0)


def _official_matching(
    nodules: list[tuple[tuple[float, float, float], float]],
    excluded: list[tuple[tuple[float, float, float], float]],
    cands: list[tuple[tuple[float, float, float], float]],
    unknown_mm: float = 10.0,
) -> tuple[list[float], int, int, int, int]:
    """A plain-loop transcription of the LUNA16 script's matching for one scan (no cap).

    Returns the TP probabilities in nodule order, and the FN, FP, ignored and duplicate counts.
    """
    pool = dict(enumerate(cands))
    tp_probs, fn, dup, ign = [], 0, 0, 0
    for (x, y, z), diameter in nodules:
        radius_squared = math.pow(diameter / 2.0, 2.0)
        matches = []
        for key, ((cx, cy, cz), p) in enumerate(cands):
            dist = math.pow(cx - x, 2.0) + math.pow(cy - y, 2.0) + math.pow(cz - z, 2.0)
            if dist < radius_squared:
                matches.append(p)
                pool.pop(key, None)
        if matches:
            tp_probs.append(max(matches))
            dup += len(matches) - 1
        else:
            fn += 1
    for (x, y, z), diameter in excluded:
        d = diameter if diameter > 0 else unknown_mm
        radius_squared = math.pow(d / 2.0, 2.0)
        for key, ((cx, cy, cz), _) in list(pool.items()):
            if math.pow(cx - x, 2.0) + math.pow(cy - y, 2.0) + math.pow(cz - z, 2.0) < radius_squared:
                ign += 1
                del pool[key]
    return tp_probs, fn, len(pool), ign, dup


@pytest.mark.parametrize("seed", range(40))
def test_froc_and_per_nodule_matching_equal_the_official_loops(seed: int) -> None:
    """Random scans with boundary-prone coordinates (0.01 mm grid, sizes with one decimal): FROC counts
    and the per-nodule statuses equal the script's loops exactly."""
    rng = np.random.default_rng(seed)

    def point() -> tuple[float, float, float]:
        return tuple(float(v) for v in np.round(rng.uniform(-8, 8, 3), 2))  # type: ignore[return-value]

    nodules = [(point(), float(rng.integers(30, 120)) / 10) for _ in range(rng.integers(0, 5))]
    excluded = [(point(), float(rng.choice([-1.0, 4.0, 8.5]))) for _ in range(rng.integers(0, 4))]
    cands = [
        (point(), float(rng.choice([0.2, 0.5, 0.9]) if rng.random() < 0.3 else rng.random()))
        for _ in range(30)
    ]
    tp_probs, fn, fp, ign, dup = _official_matching(nodules, excluded, cands)

    m = match_findings(
        [NoduleGT(c, d) for c, d in nodules],
        [Finding(c, 5.0, probability=p) for c, p in cands],
        [ExcludedFinding(c, d) for c, d in excluded],
    )
    assert [cands[j][1] for j in m.gt_match if j is not None] == tp_probs
    assert (m.gt_match.count(None), m.status.count(FP), m.status.count(IGN)) == (fn, fp, ign)

    if not nodules:
        return
    r = evaluate_froc(
        [LunaAnnotation("s", *c, d) for c, d in nodules],
        [LunaAnnotation("s", *c, d) for c, d in excluded],
        ["s"],
        [LunaCandidate("s", *c, p) for c, p in cands],
    )
    c = r.counts
    assert (c.n_tp, c.n_fn, c.n_fp, c.n_ignored_excluded, c.n_duplicate_hits) == (
        len(tp_probs),
        fn,
        fp,
        ign,
        dup,
    )


@pytest.mark.parametrize(("unknown_mm", "n_fp"), [(10.0, 0), (6.0, 1)])
def test_lungcad_evaluate_applies_the_configured_unknown_diameter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unknown_mm: float, n_fp: int
) -> None:
    """``evaluate.excluded_unknown_diameter_mm`` reaches FROC and the per-nodule metrics of ``lungcad
    evaluate`` (it used to be read by ``evaluate-froc`` only).  A finding 4 mm from an excluded finding of
    unknown size is ignored with the default 10 mm (r 5) and a false positive with 6 mm (r 3)."""
    record = ScanRecord(
        "s",
        "p",
        tmp_path / "s.mhd",
        (NoduleGT((0.0, 0.0, 0.0), 10.0),),
        (ExcludedFinding((50.0, 0.0, 0.0), -1.0),),
    )
    findings = [
        Finding((0.0, 0.0, 1.0), 9.0, probability=0.9),
        Finding((54.0, 0.0, 0.0), 5.0, probability=0.8),
    ]
    run = CohortRun([ScanEvaluation(record, ScanResult("s", findings))], [])
    monkeypatch.setattr(eval_cohort, "read_cohort", lambda *a, **k: [record])
    monkeypatch.setattr(eval_cohort, "run_cohort", lambda *a, **k: run)
    cfg = LungcadConfig(evaluate=EvaluateConfig(excluded_unknown_diameter_mm=unknown_mm))
    detector = SimpleNamespace(
        cfg=cfg, bundle=SimpleNamespace(model_id="m", model_version="1", config_hash="h")
    )
    report = eval_cohort.evaluate_cohort(tmp_path, tmp_path / "out", detector, bootstrap=0)  # type: ignore[arg-type]
    assert report.froc.counts.n_fp == n_fp and report.froc.counts.n_ignored_excluded == 1 - n_fp
    assert (report.summary.n_false_positives, report.summary.n_ignored) == (n_fp, 1 - n_fp)
