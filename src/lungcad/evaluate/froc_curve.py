"""The FROC curve of matched entries, its read-off at fixed FP rates, and the bootstrap over scans.

``evaluate.froc`` matches candidates to nodules (LUNA16 rules) and turns the outcome into ``CurveEntries``;
this module draws the curve from them exactly as the official LUNA16 script does (the rules are in the
``evaluate.froc`` docstring, 6 and 7, and its bootstrap paragraph).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lungcad.errors import InputError


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
class CurveEntries:
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


def froc_curve(
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


def _interval(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and percentile bounds along axis 0, with the official script's index rule."""
    v = np.sort(values, axis=0)
    n = len(v)
    pz = (1.0 - confidence) / 2.0
    lo = v[min(int(np.floor(pz * n)), n - 1)]
    hi = v[min(int(np.floor((1.0 - pz) * n)), n - 1)]
    return v.mean(axis=0), lo, hi


def bootstrap_froc(
    entries: CurveEntries, rates: tuple[float, ...], samples: int, confidence: float, seed: int
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
        curve = froc_curve(
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
