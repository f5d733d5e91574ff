"""Invariants of the LUNA16 FROC (``lungcad.evaluate.froc.evaluate_froc``) on random cases.

Each case: 1-3 scans; nodule ``j`` of a scan at ``(100 j, 0, z)`` with a 3-30 mm diameter; excluded
findings at ``(100 j, 100, z)``; false-positive candidates at ``y = -200 - 30 k`` (far from every nodule and
excluded finding); hits inside a nodule (offset < radius / 2).  Probabilities come from a coarse grid, so
ties occur.

Invariants tested (exact equality of the sensitivities, CPM and counts):

1. Permuting the candidates changes nothing (the rules are per threshold, not per list position).
2. Adding false positives whose probability is below ``t*`` changes no sensitivity and not the CPM, where
   ``t*`` is the probability of the first curve point (descending) beyond 8 FPs/scan, or, when the curve
   never passes 8 FPs/scan, the lowest probability of any candidate.  Why: every curve point at a threshold
   >= t* keeps its (FPs, TPs); the points below t* lie beyond 8 FPs/scan already (the FP count only grows
   as the threshold falls), and the interpolation at 8 uses the last point at <= 8 and the first beyond
   it, both kept.  When the curve never reaches 8 the new points lie to the right of its end at the final
   sensitivity, which is where the flat extension already read it.  (New candidates with a probability
   between two existing points *inside* the 1/8..8 range would shift the curve: not an invariant.)
3. Duplicating a hit (a second candidate inside an already-hit nodule with a lower probability than its
   best hit) changes no sensitivity, not the CPM, and no TP/FP count: LUNA16 counts one TP per nodule at
   its highest-probability hit and ignores the others (``n_duplicate_hits`` grows by one).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from lungcad.annotations.model import LunaAnnotation, LunaCandidate
from lungcad.evaluate.froc import evaluate_froc
from tests.properties.settings import property_settings

PROBS = st.sampled_from([round(0.05 * k, 2) for k in range(1, 20)])


@dataclass
class Case:
    annotations: list[LunaAnnotation]
    excluded: list[LunaAnnotation]
    uids: list[str]
    candidates: list[LunaCandidate]
    hits: list[tuple[int, LunaCandidate]]  # (nodule number, candidate) of the generated hits
    diameters: list[float]
    fps: list[LunaCandidate]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_scans = draw(st.integers(1, 3))
    uids = [f"1.2.3.{s}" for s in range(n_scans)]
    annotations: list[LunaAnnotation] = []
    excluded: list[LunaAnnotation] = []
    candidates: list[LunaCandidate] = []
    hits: list[tuple[int, LunaCandidate]] = []
    fps: list[LunaCandidate] = []
    diameters: list[float] = []
    for s, uid in enumerate(uids):
        z = float(draw(st.integers(-300, 300)))
        for j in range(draw(st.integers(0 if s else 1, 3))):  # scan 0 holds a nodule: sensitivity defined
            d = draw(st.floats(3.0, 30.0))
            annotations.append(LunaAnnotation(uid, 100.0 * j, 0.0, z, d))
            diameters.append(d)
            for _ in range(draw(st.integers(0, 2))):
                u = np.asarray(draw(st.tuples(*[st.floats(-1, 1)] * 3)))
                off = u / max(np.linalg.norm(u), 1.0) * (d / 2) * 0.49  # strictly inside the radius
                c = LunaCandidate(uid, 100.0 * j + off[0], off[1], z + off[2], draw(PROBS))
                hits.append((len(diameters) - 1, c))
                candidates.append(c)
        for j in range(draw(st.integers(0, 2))):
            excluded.append(
                LunaAnnotation(uid, 100.0 * j, 100.0, z, draw(st.sampled_from([-1.0, 8.0, 20.0])))
            )
            if draw(st.booleans()):
                candidates.append(LunaCandidate(uid, 100.0 * j + 1.0, 101.0, z, draw(PROBS)))  # ignored
        for k in range(draw(st.integers(0, 30))):
            c = LunaCandidate(uid, 37.0 * k, -200.0 - 30.0 * k, z, draw(PROBS))
            fps.append(c)
            candidates.append(c)
    return Case(annotations, excluded, uids, candidates, hits, diameters, fps)


def _froc(case: Case, candidates: list[LunaCandidate]) -> tuple:
    r = evaluate_froc(case.annotations, case.excluded, case.uids, candidates)
    return r.sensitivities, r.cpm, r.counts


def _t_star(case: Case) -> float:
    """Probability below which added FPs leave CPM unchanged (module docstring, invariant 2)."""
    best: dict[int, float] = {}
    for j, c in case.hits:
        best[j] = max(best.get(j, -1.0), c.value)
    entries = [(p, 1) for p in best.values()] + [(c.value, 0) for c in case.fps]
    if not entries:
        return np.inf  # no candidate at all: the curve is (0, 0) only, any FP lands beyond its end
    fp_count = 0
    for t in sorted({p for p, _ in entries}, reverse=True):
        fp_count = sum(1 for p, tp in entries if p >= t and not tp)
        if fp_count / len(case.uids) > 8.0:
            return t
    return min(p for p, _ in entries)


@property_settings(100)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_permuting_candidates_changes_nothing(case: Case, seed: int) -> None:
    shuffled = list(case.candidates)
    random.Random(seed).shuffle(shuffled)
    assert _froc(case, shuffled) == _froc(case, case.candidates)


@property_settings(100)
@given(case=cases(), data=st.data())
def test_false_positives_below_the_8_fp_point_leave_cpm_unchanged(case: Case, data: st.DataObject) -> None:
    t_star = _t_star(case)
    low = [p for p in [round(0.05 * k, 2) for k in range(0, 20)] if p < t_star]
    assume(low)
    n_new = data.draw(st.integers(1, 10))
    added = [
        LunaCandidate(
            case.uids[i % len(case.uids)], 500.0 + 13.0 * i, -900.0, 0.0, data.draw(st.sampled_from(low))
        )
        for i in range(n_new)
    ]
    sens, cpm, counts = _froc(case, case.candidates)
    sens2, cpm2, counts2 = _froc(case, case.candidates + added)
    assert sens2 == sens and cpm2 == cpm
    assert counts2.n_fp == counts.n_fp + n_new and counts2.n_tp == counts.n_tp


@property_settings(100)
@given(case=cases(), data=st.data())
def test_duplicating_a_hit_changes_no_count_but_the_duplicates(case: Case, data: st.DataObject) -> None:
    assume(case.hits)
    j, hit = data.draw(st.sampled_from(case.hits))
    best = max(c.value for k, c in case.hits if k == j)
    below = [p for p in [round(0.05 * k, 2) for k in range(0, 20)] if p < best]
    assume(below)
    r = case.diameters[j] / 2
    dup = LunaCandidate(
        hit.seriesuid, hit.coord_x, hit.coord_y + 0.3 * r, hit.coord_z, data.draw(st.sampled_from(below))
    )
    sens, cpm, counts = _froc(case, case.candidates)
    sens2, cpm2, counts2 = _froc(case, case.candidates + [dup])
    assert sens2 == sens and cpm2 == cpm
    assert (counts2.n_tp, counts2.n_fp, counts2.n_fn) == (counts.n_tp, counts.n_fp, counts.n_fn)
    assert counts2.n_duplicate_hits == counts.n_duplicate_hits + 1
