"""Per-nodule evaluation summary of a cohort at one operating threshold (``lungcad evaluate``).

``summarise`` takes every scan's ``ScanMatch`` (``evaluate.metrics.match_findings``) and an operating
threshold t on the detection probability (default 0.5).  A nodule is *detected* when its matched finding
has probability >= t; false positives, duplicates and ignored findings are counted among findings with
probability >= t.  On the detected pairs it reports:

* sensitivity per size band (< 6, 6-8, 8-15, >= 15 mm, by ground-truth diameter) and per ground-truth
  texture ("unknown" when none is recorded), with counts found / total;
* localisation error: world distance (mm) between finding and nodule centres (mean, median, 95th
  percentile with numpy's linear interpolation: errors [0, 1, 2, 3, 4] -> p95 = 3.8);
* size error ``finding.diameter_mm - gt.diameter_mm`` in mm and in % of the ground truth (mean absolute,
  mean signed, median absolute);
* segmentation Dice on the (predicted, truth) masks the caller passes for detected nodules (pairs of two
  empty masks are undefined and counted, not averaged);
* triage: ROC AUC of ``finding.triage_probability`` against ``gt.actionable`` (Mann-Whitney, ``None`` with
  one class only), accuracy of ``triage_probability >= 0.5``, ECE and its reliability curve;
* Lung-RADS: confusion matrix (rows ground truth from ``lung_rads_category(gt.diameter_mm, gt.texture)``,
  columns ``finding.lung_rads``) and accuracy.

Detection calibration uses every finding that is a true or false positive, *without* the threshold (a
reliability diagram of the detection score needs its whole range); duplicates and ignored findings have no
label and are left out.  The FROC part is ``evaluate_froc``'s result, passed in and reported as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lungcad.annotations.lungrads import LungRads, lung_rads_category
from lungcad.errors import InputError
from lungcad.evaluate.froc import FrocResult
from lungcad.evaluate.metrics import (
    SIZE_BANDS,
    BoxMask,
    FindingStatus,
    ScanMatch,
    box_dice,
    check_threshold,
    detected_pairs,
    roc_auc,
    size_band,
)
from lungcad.model.calibration import expected_calibration_error, reliability_curve
from lungcad.types import Texture

UNKNOWN_TEXTURE = "unknown"
TEXTURE_GROUPS: tuple[str, ...] = (*(t.value for t in Texture), UNKNOWN_TEXTURE)
LUNG_RADS_CATEGORIES: tuple[str, ...] = tuple(c.value for c in LungRads)
TRIAGE_DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class GroupSensitivity:
    """Sensitivity of one group of nodules: ``found / total`` (``None`` when the group is empty)."""

    group: str
    found: int
    total: int
    sensitivity: float | None


@dataclass(frozen=True)
class ErrorDistribution:
    """Mean, median and 95th percentile of ``n`` values (all ``None`` when ``n == 0``)."""

    n: int
    mean: float | None
    median: float | None
    p95: float | None


@dataclass(frozen=True)
class SizeError:
    """Diameter error of detected nodules, ``finding - truth``, in mm and in % of the truth."""

    n: int
    mean_abs_mm: float | None
    mean_signed_mm: float | None
    median_abs_mm: float | None
    mean_abs_pct: float | None
    mean_signed_pct: float | None
    median_abs_pct: float | None


@dataclass(frozen=True)
class DiceStats:
    """Segmentation Dice over ``n`` detected nodules; ``n_undefined`` pairs had two empty masks."""

    n: int
    n_undefined: int
    mean: float | None
    median: float | None
    min: float | None


@dataclass(frozen=True)
class Reliability:
    """Calibration of a probability against 0/1 labels: ECE and the non-empty bins of the diagram."""

    n: int
    n_bins: int
    ece: float | None
    bin_centre: tuple[float, ...]
    confidence: tuple[float, ...]  # mean probability in the bin
    accuracy: tuple[float, ...]  # fraction of positive labels in the bin
    count: tuple[int, ...]


@dataclass(frozen=True)
class TriageStats:
    """Triage of detected nodules; ``n_missing`` pairs had no ``triage_probability``."""

    n: int
    n_actionable: int
    n_missing: int
    auc: float | None
    accuracy: float | None
    reliability: Reliability


@dataclass(frozen=True)
class LungRadsConfusion:
    """Confusion matrix ``matrix[truth][predicted]`` over ``categories``; ``n_missing`` had no prediction."""

    categories: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]
    n: int
    n_missing: int
    accuracy: float | None


@dataclass(frozen=True)
class EvaluationSummary:
    """Everything ``lungcad evaluate`` reports about a cohort (module docstring); ``to_dict`` is its JSON."""

    threshold: float
    n_scans: int
    n_nodules: int
    n_detected: int
    n_findings: int  # findings with probability >= threshold
    n_false_positives: int
    n_duplicates: int
    n_ignored: int
    sensitivity: float | None
    fps_per_scan: float
    by_size: tuple[GroupSensitivity, ...]
    by_texture: tuple[GroupSensitivity, ...]
    localisation_mm: ErrorDistribution
    size_error: SizeError
    dice: DiceStats
    triage: TriageStats
    detection_calibration: Reliability
    lung_rads: LungRadsConfusion
    froc: FrocResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (tuples become lists; ``froc`` is ``FrocResult.to_dict()``)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "froc":
                out[f.name] = value.to_dict() if value is not None else None
            else:
                out[f.name] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    """Dataclasses -> dicts and tuples -> lists, recursively (the values themselves are already plain)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _distribution(values: Sequence[float]) -> ErrorDistribution:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return ErrorDistribution(0, None, None, None)
    return ErrorDistribution(int(v.size), float(v.mean()), float(np.median(v)), float(np.percentile(v, 95)))


def _groups(names: Sequence[str], keys: Sequence[str], found: Sequence[bool]) -> tuple[GroupSensitivity, ...]:
    out = []
    for name in names:
        sel = [f for k, f in zip(keys, found, strict=True) if k == name]
        out.append(GroupSensitivity(name, sum(sel), len(sel), _ratio(sum(sel), len(sel))))
    return tuple(out)


def _size_error(errors_mm: Sequence[float], truth_mm: Sequence[float]) -> SizeError:
    e = np.asarray(errors_mm, dtype=np.float64)
    if e.size == 0:
        return SizeError(0, None, None, None, None, None, None)
    pct = 100.0 * e / np.asarray(truth_mm, dtype=np.float64)
    return SizeError(
        n=int(e.size),
        mean_abs_mm=float(np.abs(e).mean()),
        mean_signed_mm=float(e.mean()),
        median_abs_mm=float(np.median(np.abs(e))),
        mean_abs_pct=float(np.abs(pct).mean()),
        mean_signed_pct=float(pct.mean()),
        median_abs_pct=float(np.median(np.abs(pct))),
    )


def dice_stats(segmentations: Sequence[tuple[BoxMask, BoxMask]]) -> DiceStats:
    """Dice of each ``(predicted, truth)`` box-mask pair (``box_dice``); undefined pairs are skipped.

    Raises:
        InputError: a malformed pair.
    """
    scores, undefined = [], 0
    for k, pair in enumerate(segmentations):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise InputError(
                f"segmentation {k} must be a (predicted, truth) pair of (offset_zyx, mask) boxes"
            )
        try:
            d = box_dice(pair[0], pair[1])
        except InputError as err:
            raise InputError(f"segmentation {k}: {err}") from None
        if d is None:
            undefined += 1
        else:
            scores.append(d)
    if not scores:
        return DiceStats(0, undefined, None, None, None)
    s = np.asarray(scores)
    return DiceStats(len(scores), undefined, float(s.mean()), float(np.median(s)), float(s.min()))


def reliability(probs: Sequence[float], labels: Sequence[bool], n_bins: int = 10) -> Reliability:
    """ECE and reliability-diagram bins (``model.calibration``); an empty input gives ``ece=None``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.shape != y.shape:
        raise InputError(f"reliability: {p.size} probabilities but {y.size} labels")
    if p.size == 0:
        return Reliability(0, n_bins, None, (), (), (), ())
    centre, conf, acc, count = reliability_curve(p, y, n_bins)
    return Reliability(
        n=int(p.size),
        n_bins=n_bins,
        ece=expected_calibration_error(p, y, n_bins),
        bin_centre=tuple(float(v) for v in centre),
        confidence=tuple(float(v) for v in conf),
        accuracy=tuple(float(v) for v in acc),
        count=tuple(int(v) for v in count),
    )


def lung_rads_confusion(truth: Sequence[str], predicted: Sequence[str | None]) -> LungRadsConfusion:
    """Confusion matrix of Lung-RADS categories; pairs without a prediction are counted in ``n_missing``.

    Raises:
        InputError: lengths differ or an unknown category.
    """
    if len(truth) != len(predicted):
        raise InputError(f"lung_rads_confusion: {len(truth)} true but {len(predicted)} predicted categories")
    index = {c: i for i, c in enumerate(LUNG_RADS_CATEGORIES)}
    matrix = np.zeros((len(index), len(index)), dtype=np.int64)
    missing = 0
    for t, p in zip(truth, predicted, strict=True):
        if p is None:
            missing += 1
            continue
        if t not in index or p not in index:
            raise InputError(
                f"unknown Lung-RADS category {t if t not in index else p!r}",
                fix=f"use one of {list(LUNG_RADS_CATEGORIES)}",
            )
        matrix[index[t], index[p]] += 1
    n = int(matrix.sum())
    return LungRadsConfusion(
        categories=LUNG_RADS_CATEGORIES,
        matrix=tuple(tuple(int(v) for v in row) for row in matrix),
        n=n,
        n_missing=missing,
        accuracy=_ratio(int(np.trace(matrix)), n),
    )


def summarise(
    matches: Sequence[ScanMatch],
    *,
    threshold: float = 0.5,
    froc: FrocResult | None = None,
    segmentations: Sequence[tuple[BoxMask, BoxMask]] = (),
    n_bins: int = 10,
) -> EvaluationSummary:
    """Summarise a cohort's matches at one operating threshold (module docstring).

    Args:
        matches: one ``ScanMatch`` per evaluated scan (scans without nodules or findings included: they
            count in the FPs per scan).
        threshold: operating threshold on ``finding.probability``, in [0, 1]; kept when >= threshold.
        froc: ``evaluate_froc``'s result for the same cohort, reported as it is.
        segmentations: ``(predicted, truth)`` box masks of detected nodules, for Dice
            (``metrics.detected_pairs`` lists the detected nodules).
        n_bins: bins of the reliability diagrams and ECE.

    Raises:
        InputError: no scans, a threshold outside [0, 1], ``n_bins < 1``, or a malformed segmentation.
    """
    t = check_threshold(threshold)
    if not matches:
        raise InputError("no scans to summarise", fix="pass one ScanMatch per evaluated scan")
    if int(n_bins) != n_bins or n_bins < 1:
        raise InputError(f"n_bins must be a positive integer, got {n_bins}")
    pairs = detected_pairs(matches, t)
    detected = {(p.scan_index, p.gt_index) for p in pairs}
    nodules = [(s, i, g) for s, m in enumerate(matches) for i, g in enumerate(m.gt)]
    found = [(s, i) in detected for s, i, _ in nodules]
    kept = [st for m in matches for f, st in zip(m.findings, m.status, strict=True) if f.probability >= t]
    n_fp = kept.count(FindingStatus.FALSE_POSITIVE)

    labelled = [
        (f.probability, st is FindingStatus.TRUE_POSITIVE)
        for m in matches
        for f, st in zip(m.findings, m.status, strict=True)
        if st in (FindingStatus.TRUE_POSITIVE, FindingStatus.FALSE_POSITIVE)
    ]
    triaged = [p for p in pairs if p.finding.triage_probability is not None]
    tri_p = np.asarray([p.finding.triage_probability for p in triaged], dtype=np.float64)
    tri_y = np.asarray([p.gt.actionable for p in triaged], dtype=bool)
    triage = TriageStats(
        n=len(triaged),
        n_actionable=int(tri_y.sum()),
        n_missing=len(pairs) - len(triaged),
        auc=roc_auc(tri_p, tri_y),
        accuracy=float(np.mean((tri_p >= TRIAGE_DECISION_THRESHOLD) == tri_y)) if len(triaged) else None,
        reliability=reliability(tri_p, tri_y, n_bins),
    )
    return EvaluationSummary(
        threshold=t,
        n_scans=len(matches),
        n_nodules=len(nodules),
        n_detected=len(detected),
        n_findings=len(kept),
        n_false_positives=n_fp,
        n_duplicates=kept.count(FindingStatus.DUPLICATE),
        n_ignored=kept.count(FindingStatus.IGNORED),
        sensitivity=_ratio(len(detected), len(nodules)),
        fps_per_scan=n_fp / len(matches),
        by_size=_groups(SIZE_BANDS, [size_band(g.diameter_mm) for _, _, g in nodules], found),
        by_texture=_groups(TEXTURE_GROUPS, [g.texture or UNKNOWN_TEXTURE for _, _, g in nodules], found),
        localisation_mm=_distribution([p.distance_mm for p in pairs]),
        size_error=_size_error(
            [p.finding.diameter_mm - p.gt.diameter_mm for p in pairs], [p.gt.diameter_mm for p in pairs]
        ),
        dice=dice_stats(segmentations),
        triage=triage,
        detection_calibration=reliability([p for p, _ in labelled], [y for _, y in labelled], n_bins),
        lung_rads=lung_rads_confusion(
            [lung_rads_category(p.gt.diameter_mm, p.gt.texture).value for p in pairs],
            [p.finding.lung_rads for p in pairs],
        ),
        froc=froc,
    )
