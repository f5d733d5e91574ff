"""FROC and CPM exactly as the LUNA16 challenge evaluates nodule detection.

Rules (Setio et al., Medical Image Analysis 42:1-13, 2017, and the challenge's evaluation script):

1. Per scan of the evaluated list, at most ``max_candidates_per_scan`` (100) candidates are kept: when a
   scan has more, the (N+1)-th highest probability is the cut and only candidates *strictly above* it stay
   (as the official script does; candidates tied at the cut are all dropped).
2. A candidate hits a nodule when its distance to the nodule centre is strictly below the nodule's radius
   (world mm; a candidate exactly on the radius misses).
3. Nodules of ``annotations.csv`` are processed first: a nodule hit by one or more candidates is one true
   positive at the highest probability among them (the other hits are "duplicates": neither TP nor FP); the
   hitting candidates leave the pool (a candidate hitting two nodules counts for both).  A nodule without a
   hit is a false negative: it enters the curve at probability -inf, i.e. never.
4. Then ``annotations_excluded.csv`` findings (diameter -1 = unknown -> ``excluded_unknown_diameter_mm``,
   10 mm): candidates still in the pool that hit one are ignored, neither TP nor FP.

Rules 2-5 are ``evaluate.matching.luna16_match``, the one matcher the per-nodule metrics use too.
5. Every candidate left in the pool is a false positive.
6. The curve has one point per distinct probability threshold t (descending), starting at (0, 0):
   ``FPs/scan = #FP(p >= t) / n_scans`` (every scan of the list counts, with or without nodules) and
   ``sensitivity = #TP(p >= t) / n_nodules`` (all nodules, detected or not).
7. Sensitivities at 1/8, 1/4, 1/2, 1, 2, 4, 8 FPs/scan are read from the curve by linear interpolation
   between its points; CPM is their mean.

Extension of the curve when the system makes fewer than 8 FPs per scan overall: the curve ends at
(total FPs / n_scans, detected / n_nodules) and is continued *flat* at that sensitivity to the right -
the official script's ``np.interp`` does the same, and the missed nodules (probability -inf) never raise
it.  Example: 2 scans, 2 nodules, one found at p = 0.9, one FP at p = 0.5 -> curve (0, 0), (0, 0.5),
(0.5, 0.5); the sensitivity is 0.5 at every rate from 1/8 to 8 and CPM = 0.5.  At a rate where the curve
rises vertically (several TPs at one FP count) the highest sensitivity reached at that rate is read.

Bootstrap (optional): scans are resampled with replacement (``n_scans`` per sample, seeded), the curve and
the seven sensitivities recomputed, and the mean and the percentile interval reported (lower bound
``sorted[floor(0.025 n)]``, upper ``sorted[floor(0.975 n)]`` for 95 %, as the official script).  A sample
without any nodule has no sensitivity and is skipped (counted in ``n_skipped``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lungcad.annotations.model import (
    EXCLUDED_UNKNOWN_DIAMETER_MM,
    ExcludedFinding,
    LunaAnnotation,
    LunaCandidate,
    NoduleRecord,
)
from lungcad.errors import InputError
from lungcad.evaluate.froc_curve import BootstrapResult, CurveEntries, FrocCurve, bootstrap_froc, froc_curve
from lungcad.evaluate.matching import FindingStatus, excluded_arrays, luna16_match

__all__ = [
    "LUNA16_FP_RATES",
    "BootstrapResult",
    "FrocCounts",
    "FrocCurve",
    "FrocResult",
    "ScanDetections",
    "evaluate_froc",
    "froc_of_detections",
]

LUNA16_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class FrocCounts:
    """Candidate bookkeeping over the evaluated scans."""

    n_scans: int
    n_nodules: int
    n_candidates: int  # kept after the per-scan cap, on evaluated scans
    n_tp: int  # nodules detected
    n_fn: int  # nodules missed
    n_fp: int
    n_ignored_excluded: int  # candidates on excluded findings
    n_duplicate_hits: int  # extra candidates on an already-hit nodule
    n_dropped_by_cap: int
    n_outside_series: int  # candidates on scans not in the series list


@dataclass(frozen=True)
class FrocResult:
    curve: FrocCurve
    fp_rates: tuple[float, ...]
    sensitivities: tuple[float, ...]
    cpm: float
    counts: FrocCounts
    bootstrap: BootstrapResult | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "fp_rates": list(self.fp_rates),
            "sensitivities": list(self.sensitivities),
            "cpm": self.cpm,
            "counts": self.counts.__dict__.copy(),
            "max_fps_per_scan": float(self.curve.fps_per_scan[-1]),
        }
        if self.bootstrap is not None:
            b = self.bootstrap
            out["bootstrap"] = {
                "n_samples": b.n_samples,
                "n_skipped": b.n_skipped,
                "confidence": b.confidence,
                "sensitivities_mean": list(b.sensitivities_mean),
                "sensitivities_low": list(b.sensitivities_low),
                "sensitivities_high": list(b.sensitivities_high),
                "cpm_mean": b.cpm_mean,
                "cpm_low": b.cpm_low,
                "cpm_high": b.cpm_high,
            }
        return out


def _cap(probs: np.ndarray, cap: int) -> np.ndarray:
    """Indices kept by the official per-scan cap (strictly above the (cap+1)-th highest probability)."""
    if len(probs) <= cap:
        return np.arange(len(probs))
    cut = np.sort(probs)[::-1][cap]
    return np.flatnonzero(probs > cut)


def _match(
    truth: dict[str, _ScanTruth],
    seriesuids: Sequence[str],
    candidates: Sequence[LunaCandidate],
    max_candidates_per_scan: int,
    excluded_unknown_diameter_mm: float,
) -> tuple[CurveEntries, FrocCounts]:
    index = {uid: i for i, uid in enumerate(seriesuids)}
    by_scan: dict[str, list[LunaCandidate]] = {}
    for c in candidates:
        by_scan.setdefault(c.seriesuid, []).append(c)
    probs: list[float] = []
    labels: list[int] = []
    scans: list[int] = []
    per_scan = np.zeros(len(seriesuids), dtype=np.int64)
    n = dict.fromkeys(("cand", "tp", "fn", "fp", "ign", "dup", "cap"), 0)
    empty = _ScanTruth([], [], [])
    for uid, s in index.items():
        cands = by_scan.get(uid, [])
        p = np.asarray([c.value for c in cands], dtype=np.float64)
        keep = _cap(p, max_candidates_per_scan)
        n["cap"] += len(cands) - len(keep)
        xyz = np.asarray([cands[k].center_xyz_mm for k in keep], dtype=np.float64).reshape(-1, 3)
        p = p[keep]
        n["cand"] += len(keep)
        t = truth.get(uid, empty)
        m = luna16_match(
            np.asarray(t.centers, dtype=np.float64).reshape(-1, 3),
            np.asarray(t.diameters, dtype=np.float64),
            xyz,
            p,
            *excluded_arrays(t.excluded, excluded_unknown_diameter_mm),
        )
        per_scan[s] += len(t.diameters)
        for best, hits in zip(m.best, m.n_hits, strict=True):
            if best < 0:
                n["fn"] += 1
                continue
            n["tp"] += 1
            n["dup"] += int(hits) - 1  # per nodule, as LUNA16 counts: a shared extra hit counts for each
            probs.append(float(p[best]))
            labels.append(1)
            scans.append(s)
        fp = np.asarray([st is FindingStatus.FALSE_POSITIVE for st in m.status], dtype=bool)
        n["ign"] += m.count(FindingStatus.IGNORED)
        n["fp"] += int(fp.sum())
        probs.extend(p[fp].tolist())
        labels.extend([0] * int(fp.sum()))
        scans.extend([s] * int(fp.sum()))
    counts = FrocCounts(
        n_scans=len(seriesuids),
        n_nodules=int(per_scan.sum()),
        n_candidates=n["cand"],
        n_tp=n["tp"],
        n_fn=n["fn"],
        n_fp=n["fp"],
        n_ignored_excluded=n["ign"],
        n_duplicate_hits=n["dup"],
        n_dropped_by_cap=n["cap"],
        n_outside_series=sum(len(v) for k, v in by_scan.items() if k not in index),
    )
    entries = CurveEntries(
        np.asarray(probs), np.asarray(labels, dtype=np.int64), np.asarray(scans, dtype=np.int64), per_scan
    )
    return entries, counts


@dataclass(frozen=True)
class _ScanTruth:
    """One scan's reference: nodule centres (world mm) and diameters (mm), and its excluded findings."""

    centers: list[tuple[float, float, float]]
    diameters: list[float]
    excluded: list[ExcludedFinding]


def _truth_by_scan(
    annotations: Sequence[LunaAnnotation], excluded: Sequence[LunaAnnotation]
) -> dict[str, _ScanTruth]:
    out: dict[str, _ScanTruth] = {}
    for a in annotations:
        t = out.setdefault(a.seriesuid, _ScanTruth([], [], []))
        t.centers.append(a.center_xyz_mm)
        t.diameters.append(a.diameter_mm)
    for a in excluded:
        out.setdefault(a.seriesuid, _ScanTruth([], [], [])).excluded.append(a.to_excluded())
    return out


def evaluate_froc(
    annotations: Sequence[LunaAnnotation],
    excluded: Sequence[LunaAnnotation],
    seriesuids: Sequence[str],
    candidates: Sequence[LunaCandidate],
    *,
    max_candidates_per_scan: int = 100,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
    excluded_unknown_diameter_mm: float = EXCLUDED_UNKNOWN_DIAMETER_MM,
    bootstrap_samples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> FrocResult:
    """LUNA16 FROC / CPM of a detection result (rules in the module docstring).

    Args:
        annotations: nodules (``annotations.csv``), world mm.
        excluded: irrelevant findings (``annotations_excluded.csv``; diameter -1 = unknown).
        seriesuids: the scans evaluated (``seriesuids.csv``), unique.
        candidates: detections; ``value`` is the probability.
        max_candidates_per_scan: per-scan cap (official: 100).
        fp_rates: FPs/scan at which sensitivities are read (CPM = their mean).
        excluded_unknown_diameter_mm: diameter used for excluded findings with diameter -1.
        bootstrap_samples: 0 for none; the official evaluation uses 1000.
        confidence: bootstrap interval coverage.
        seed: bootstrap random seed.

    Raises:
        InputError: no scans, repeated series UIDs, no nodule in the evaluated scans, or a bad parameter.
    """
    return _froc(
        _truth_by_scan(annotations, excluded),
        seriesuids,
        candidates,
        max_candidates_per_scan=max_candidates_per_scan,
        fp_rates=fp_rates,
        excluded_unknown_diameter_mm=excluded_unknown_diameter_mm,
        bootstrap_samples=bootstrap_samples,
        confidence=confidence,
        seed=seed,
    )


def _froc(
    truth: dict[str, _ScanTruth],
    seriesuids: Sequence[str],
    candidates: Sequence[LunaCandidate],
    *,
    max_candidates_per_scan: int = 100,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
    excluded_unknown_diameter_mm: float = EXCLUDED_UNKNOWN_DIAMETER_MM,
    bootstrap_samples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> FrocResult:
    """``evaluate_froc`` on the reference grouped by scan (shared with ``froc_of_detections``)."""
    if not seriesuids:
        raise InputError("the series list is empty", fix="pass the seriesuids.csv of the evaluated scans")
    if len(set(seriesuids)) != len(seriesuids):
        raise InputError("the series list repeats a series UID", fix="list every evaluated scan once")
    if max_candidates_per_scan < 1:
        raise InputError(f"max_candidates_per_scan must be >= 1, got {max_candidates_per_scan}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if bootstrap_samples < 0:
        raise InputError(f"bootstrap_samples must be >= 0, got {bootstrap_samples}")
    entries, counts = _match(
        truth, seriesuids, candidates, max_candidates_per_scan, excluded_unknown_diameter_mm
    )
    if counts.n_nodules == 0:
        raise InputError(
            "no annotated nodule in the evaluated scans: sensitivity is undefined",
            fix="check that annotations.csv and seriesuids.csv name the same series",
        )
    rates = tuple(float(r) for r in fp_rates)
    curve = froc_curve(
        entries.probs, entries.labels, np.ones(len(entries.probs)), counts.n_nodules, counts.n_scans
    )
    sens = curve.sensitivity_at(rates)
    boot = bootstrap_froc(entries, rates, bootstrap_samples, confidence, seed) if bootstrap_samples else None
    return FrocResult(curve, rates, tuple(float(s) for s in sens), float(np.mean(sens)), counts, boot)


@dataclass(frozen=True)
class ScanDetections:
    """One scan's ground truth and findings, for ``froc_of_detections``.

    Attributes:
        scan_id: the scan (LUNA16 ``seriesuid``).
        nodules: ground-truth nodules (``NoduleGT`` or any ``NoduleRecord``).
        excluded: its excluded findings.
        findings: objects with ``center_xyz_mm`` and ``probability`` (e.g. ``Finding``).
    """

    scan_id: str
    nodules: Sequence[NoduleRecord]
    excluded: Sequence[ExcludedFinding]
    findings: Sequence


def froc_of_detections(scans: Sequence[ScanDetections], **kwargs: object) -> FrocResult | None:
    """``evaluate_froc`` over in-memory detections (training validation, ``lungcad evaluate``).

    Keyword arguments go to ``evaluate_froc``.  Returns ``None`` when no scan holds a nodule (CPM is
    undefined then).
    """
    truth = {
        s.scan_id: _ScanTruth(
            [n.center_xyz_mm for n in s.nodules], [n.diameter_mm for n in s.nodules], list(s.excluded)
        )
        for s in scans
    }
    if not any(t.diameters for t in truth.values()):
        return None
    candidates = [
        LunaCandidate(s.scan_id, *f.center_xyz_mm, f.probability) for s in scans for f in s.findings
    ]
    return _froc(truth, [s.scan_id for s in scans], candidates, **kwargs)  # type: ignore[arg-type]
