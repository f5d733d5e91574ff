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
from dataclasses import dataclass, field

import numpy as np

from lungcad.annotations.model import LunaAnnotation, LunaCandidate
from lungcad.errors import InputError

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
class FrocCurve:
    """Curve points, thresholds descending (``+inf`` first for the (0, 0) point)."""

    fps_per_scan: np.ndarray
    sensitivity: np.ndarray
    thresholds: np.ndarray

    def sensitivity_at(self, fp_rates: Sequence[float]) -> np.ndarray:
        """Linear interpolation at ``fp_rates``; flat beyond the last point (module docstring, rule 7)."""
        return _read_off(self.fps_per_scan, self.sensitivity, np.asarray(fp_rates, dtype=np.float64))


@dataclass(frozen=True)
class BootstrapResult:
    n_samples: int
    n_skipped: int
    confidence: float
    sensitivities_mean: tuple[float, ...]
    sensitivities_low: tuple[float, ...]
    sensitivities_high: tuple[float, ...]
    cpm_mean: float
    cpm_low: float
    cpm_high: float
    grid_fps: np.ndarray = field(repr=False)  # linspace(1/8, 8, 10000) as in the official script
    grid_mean: np.ndarray = field(repr=False)
    grid_low: np.ndarray = field(repr=False)
    grid_high: np.ndarray = field(repr=False)


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


@dataclass(frozen=True)
class _Entries:
    """Curve entries of all scans: probability, 1 = detected nodule / 0 = FP, scan index; nodules per scan."""

    probs: np.ndarray
    labels: np.ndarray
    scans: np.ndarray
    nodules_per_scan: np.ndarray


def _read_off(fps: np.ndarray, sens: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Linear interpolation on the curve at ``rates``; flat at the last sensitivity beyond the last point.

    For each rate x the segment used starts at the *last* point with ``fps <= x``, so at a rate where the
    curve rises vertically the highest sensitivity reached there is read (``np.interp`` does the same).
    """
    x = np.asarray(rates, dtype=np.float64)
    if len(fps) < 2:
        return np.full(x.shape, float(sens[-1]))
    beyond = x >= fps[-1]
    j = np.clip(np.searchsorted(fps, x, side="right") - 1, 0, len(fps) - 2)
    x0, x1 = fps[j], fps[j + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = sens[j] + (sens[j + 1] - sens[j]) * (x - x0) / (x1 - x0)
    return np.where(beyond, sens[-1], inner)


def _cap(probs: np.ndarray, cap: int) -> np.ndarray:
    """Indices kept by the official per-scan cap (strictly above the (cap+1)-th highest probability)."""
    if len(probs) <= cap:
        return np.arange(len(probs))
    cut = np.sort(probs)[::-1][cap]
    return np.flatnonzero(probs > cut)


def _match(
    annotations: Sequence[LunaAnnotation],
    excluded: Sequence[LunaAnnotation],
    seriesuids: Sequence[str],
    candidates: Sequence[LunaCandidate],
    max_candidates_per_scan: int,
    excluded_unknown_diameter_mm: float,
) -> tuple[_Entries, FrocCounts]:
    index = {uid: i for i, uid in enumerate(seriesuids)}
    by_scan: dict[str, list[LunaCandidate]] = {}
    for c in candidates:
        by_scan.setdefault(c.seriesuid, []).append(c)
    included: dict[str, list[LunaAnnotation]] = {}
    for a in annotations:
        included.setdefault(a.seriesuid, []).append(a)
    irrelevant: dict[str, list[LunaAnnotation]] = {}
    for a in excluded:
        irrelevant.setdefault(a.seriesuid, []).append(a)
    probs: list[float] = []
    labels: list[int] = []
    scans: list[int] = []
    per_scan = np.zeros(len(seriesuids), dtype=np.int64)
    n = dict.fromkeys(("cand", "tp", "fn", "fp", "ign", "dup", "cap"), 0)
    for uid, s in index.items():
        cands = by_scan.get(uid, [])
        p = np.asarray([c.value for c in cands], dtype=np.float64)
        keep = _cap(p, max_candidates_per_scan)
        n["cap"] += len(cands) - len(keep)
        xyz = np.asarray([cands[k].center_xyz_mm for k in keep], dtype=np.float64).reshape(-1, 3)
        p = p[keep]
        n["cand"] += len(keep)
        pool = np.ones(len(keep), dtype=bool)
        for nod in included.get(uid, []):
            per_scan[s] += 1
            hits = np.sum((xyz - np.asarray(nod.center_xyz_mm)) ** 2, axis=1) < (nod.diameter_mm / 2.0) ** 2
            if hits.any():
                n["tp"] += 1
                n["dup"] += int(hits.sum()) - 1
                probs.append(float(p[hits].max()))
                labels.append(1)
                scans.append(s)
                pool &= ~hits
            else:
                n["fn"] += 1
        for nod in irrelevant.get(uid, []):
            d = nod.diameter_mm if nod.diameter_mm > 0 else excluded_unknown_diameter_mm
            hits = pool & (np.sum((xyz - np.asarray(nod.center_xyz_mm)) ** 2, axis=1) < (d / 2.0) ** 2)
            n["ign"] += int(hits.sum())
            pool &= ~hits
        n["fp"] += int(pool.sum())
        probs.extend(p[pool].tolist())
        labels.extend([0] * int(pool.sum()))
        scans.extend([s] * int(pool.sum()))
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
    entries = _Entries(
        np.asarray(probs), np.asarray(labels, dtype=np.int64), np.asarray(scans, dtype=np.int64), per_scan
    )
    return entries, counts


def _curve(
    probs: np.ndarray, labels: np.ndarray, weights: np.ndarray, n_nodules: float, n_scans: int
) -> FrocCurve:
    """Curve of weighted entries (weights = how often each entry's scan was drawn; 1 without bootstrap)."""
    order = np.argsort(-probs, kind="stable")
    p, lab, w = probs[order], labels[order], weights[order]
    tp = np.cumsum(w * lab)
    fp = np.cumsum(w * (1 - lab))
    last = np.flatnonzero(np.r_[p[1:] != p[:-1], True]) if len(p) else np.zeros(0, dtype=np.int64)
    return FrocCurve(
        fps_per_scan=np.r_[0.0, fp[last] / n_scans],
        sensitivity=np.r_[0.0, tp[last] / n_nodules],
        thresholds=np.r_[np.inf, p[last]],
    )


def evaluate_froc(
    annotations: Sequence[LunaAnnotation],
    excluded: Sequence[LunaAnnotation],
    seriesuids: Sequence[str],
    candidates: Sequence[LunaCandidate],
    *,
    max_candidates_per_scan: int = 100,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
    excluded_unknown_diameter_mm: float = 10.0,
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
        annotations, excluded, seriesuids, candidates, max_candidates_per_scan, excluded_unknown_diameter_mm
    )
    if counts.n_nodules == 0:
        raise InputError(
            "no annotated nodule in the evaluated scans: sensitivity is undefined",
            fix="check that annotations.csv and seriesuids.csv name the same series",
        )
    rates = tuple(float(r) for r in fp_rates)
    curve = _curve(
        entries.probs, entries.labels, np.ones(len(entries.probs)), counts.n_nodules, counts.n_scans
    )
    sens = curve.sensitivity_at(rates)
    boot = _bootstrap(entries, rates, bootstrap_samples, confidence, seed) if bootstrap_samples else None
    return FrocResult(curve, rates, tuple(float(s) for s in sens), float(np.mean(sens)), counts, boot)


def _interval(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and percentile bounds along axis 0, with the official script's index rule."""
    v = np.sort(values, axis=0)
    n = len(v)
    pz = (1.0 - confidence) / 2.0
    lo = v[min(int(np.floor(pz * n)), n - 1)]
    hi = v[min(int(np.floor((1.0 - pz) * n)), n - 1)]
    return v.mean(axis=0), lo, hi


def _bootstrap(
    entries: _Entries, rates: tuple[float, ...], samples: int, confidence: float, seed: int
) -> BootstrapResult:
    rng = np.random.default_rng(seed)
    n_scans = len(entries.nodules_per_scan)
    grid = np.linspace(rates[0], rates[-1], 10000)
    sens_rows, grid_rows, skipped = [], [], 0
    for _ in range(samples):
        drawn = np.bincount(rng.integers(0, n_scans, n_scans), minlength=n_scans)
        n_nodules = float(drawn @ entries.nodules_per_scan)
        if n_nodules == 0:
            skipped += 1
            continue
        curve = _curve(
            entries.probs, entries.labels, drawn[entries.scans].astype(np.float64), n_nodules, n_scans
        )
        sens_rows.append(curve.sensitivity_at(rates))
        grid_rows.append(curve.sensitivity_at(grid).astype(np.float32))
    if not sens_rows:
        raise InputError(f"all {samples} bootstrap samples drew scans without nodules")
    sens = np.asarray(sens_rows)
    s_mean, s_lo, s_hi = _interval(sens, confidence)
    c_mean, c_lo, c_hi = _interval(sens.mean(axis=1), confidence)
    g_mean, g_lo, g_hi = _interval(np.asarray(grid_rows), confidence)
    return BootstrapResult(
        n_samples=len(sens_rows),
        n_skipped=skipped,
        confidence=confidence,
        sensitivities_mean=tuple(float(v) for v in s_mean),
        sensitivities_low=tuple(float(v) for v in s_lo),
        sensitivities_high=tuple(float(v) for v in s_hi),
        cpm_mean=float(c_mean),
        cpm_low=float(c_lo),
        cpm_high=float(c_hi),
        grid_fps=grid,
        grid_mean=g_mean,
        grid_low=g_lo,
        grid_high=g_hi,
    )


@dataclass(frozen=True)
class ScanDetections:
    """One scan's ground truth and findings, for ``froc_of_detections``.

    Attributes:
        scan_id: the scan (LUNA16 ``seriesuid``).
        nodules: objects with ``center_xyz_mm`` and ``diameter_mm`` (e.g. ``NoduleGT``).
        excluded: irrelevant findings as ``((x, y, z) mm, diameter mm)``; -1 = unknown diameter.
        findings: objects with ``center_xyz_mm`` and ``probability`` (e.g. ``Finding``).
    """

    scan_id: str
    nodules: Sequence
    excluded: Sequence
    findings: Sequence


def froc_of_detections(scans: Sequence[ScanDetections], **kwargs: object) -> FrocResult | None:
    """``evaluate_froc`` over in-memory detections (training validation, ``lungcad evaluate``).

    Keyword arguments go to ``evaluate_froc``.  Returns ``None`` when no scan holds a nodule (CPM is
    undefined then).
    """
    annotations = [
        LunaAnnotation(s.scan_id, *n.center_xyz_mm, n.diameter_mm) for s in scans for n in s.nodules
    ]
    if not annotations:
        return None
    excluded = [LunaAnnotation(s.scan_id, *c, d) for s in scans for c, d in s.excluded]
    candidates = [
        LunaCandidate(s.scan_id, *f.center_xyz_mm, f.probability) for s in scans for f in s.findings
    ]
    return evaluate_froc(annotations, excluded, [s.scan_id for s in scans], candidates, **kwargs)  # type: ignore[arg-type]
