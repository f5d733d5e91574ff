"""Per-nodule evaluation: LUNA16 matching of findings to ground truth, and the numeric metrics built on it.

``match_findings`` validates one scan's records and matches them with ``evaluate.matching.luna16_match``,
the same matcher ``evaluate.froc`` uses, so a finding is a true positive, a duplicate, ignored (on an
excluded finding) or a false positive here exactly when FROC counts it so (rules in ``evaluate.matching``).

Matching does not depend on an operating threshold t: the best hit of a nodule is found at t exactly when
its probability is >= t, and the pairs are the same as when findings below t are dropped first.  So one
match per scan serves every threshold, and the summary (``evaluate.summary``) applies t afterwards.

The metrics here are small pure functions on arrays, each tested on hand-computed cases: ``dice`` and
``box_dice`` (segmentation overlap), ``roc_auc`` (Mann-Whitney), ``size_band`` (< 6, 6-8, 8-15, >= 15 mm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lungcad.annotations.masks import BoxMask
from lungcad.annotations.model import EXCLUDED_UNKNOWN_DIAMETER_MM, ExcludedFinding, NoduleGT
from lungcad.errors import InputError
from lungcad.evaluate.matching import FindingStatus, excluded_arrays, luna16_match
from lungcad.types import Finding, LungRads

__all__ = [
    "EXCLUDED_UNKNOWN_DIAMETER_MM",
    "SIZE_BANDS",
    "FindingStatus",
    "MatchedPair",
    "ScanMatch",
    "box_dice",
    "check_threshold",
    "detected_pairs",
    "dice",
    "match_findings",
    "roc_auc",
    "size_band",
]

SIZE_BANDS: tuple[str, ...] = ("<6", "6-8", "8-15", ">=15")
_BAND_EDGES_MM = (6.0, 8.0, 15.0)


@dataclass(frozen=True)
class ScanMatch:
    """The outcome of matching one scan's findings to its ground truth.

    Attributes:
        gt: ground-truth nodules of the scan.
        findings: findings of the scan (all of them, no threshold applied).
        gt_match: per nodule, the index into ``findings`` of its matched finding, or ``None`` (missed).
        status: per finding, its ``FindingStatus``.
        scan_id: for reports only.
    """

    gt: tuple[NoduleGT, ...]
    findings: tuple[Finding, ...]
    gt_match: tuple[int | None, ...]
    status: tuple[FindingStatus, ...]
    scan_id: str = ""

    def __post_init__(self) -> None:
        if len(self.gt_match) != len(self.gt):
            raise InputError(
                f"scan {self.scan_id!r}: gt_match has {len(self.gt_match)} entries for {len(self.gt)} nodules"
            )
        if len(self.status) != len(self.findings):
            raise InputError(
                f"scan {self.scan_id!r}: status has {len(self.status)} entries "
                f"for {len(self.findings)} findings"
            )
        for i, j in enumerate(self.gt_match):
            if j is not None and not 0 <= j < len(self.findings):
                raise InputError(
                    f"scan {self.scan_id!r}: nodule {i} is matched to finding {j}, "
                    f"but there are {len(self.findings)} findings"
                )


def _check_point(xyz: Sequence[float], what: str) -> np.ndarray:
    p = np.asarray(xyz, dtype=np.float64)
    if p.shape != (3,) or not np.isfinite(p).all():
        raise InputError(f"{what} must be three finite world coordinates (x, y, z) mm, got {xyz!r}")
    return p


def _check_probability(p: float | None, what: str) -> None:
    if p is not None and not (0.0 <= p <= 1.0):  # also rejects NaN
        raise InputError(f"{what} must be in [0, 1], got {p}")


def _validate(
    gt: Sequence[NoduleGT], findings: Sequence[Finding], excluded: Sequence[ExcludedFinding], scan_id: str
) -> None:
    """Check the inputs once, here at the boundary, so the matcher and the metrics never meet a bad value.

    The record types validate themselves on construction; this also catches objects of other types.
    """
    for i, g in enumerate(gt):
        if not isinstance(g, NoduleGT):
            raise InputError(f"scan {scan_id!r}: nodule {i} must be a NoduleGT, got {type(g).__name__}")
    categories = {c.value for c in LungRads}
    for j, f in enumerate(findings):
        _check_point(f.center_xyz_mm, f"scan {scan_id!r}: finding {j} centre")
        if not math.isfinite(f.diameter_mm):
            raise InputError(f"scan {scan_id!r}: finding {j} diameter must be finite, got {f.diameter_mm}")
        _check_probability(f.probability, f"scan {scan_id!r}: finding {j} probability")
        _check_probability(f.triage_probability, f"scan {scan_id!r}: finding {j} triage_probability")
        if f.lung_rads is not None and f.lung_rads not in categories:
            raise InputError(
                f"scan {scan_id!r}: finding {j} has unknown Lung-RADS category {f.lung_rads!r}",
                fix=f"use one of {[c.value for c in LungRads]} or None",
            )
    for k, e in enumerate(excluded):
        if not isinstance(e, ExcludedFinding):
            raise InputError(
                f"scan {scan_id!r}: excluded entry {k} must be an ExcludedFinding, got {e!r}",
                fix="build it as ExcludedFinding(center_xyz_mm, diameter_mm), -1 or None = unknown diameter",
            )


def match_findings(
    gt: Sequence[NoduleGT],
    findings: Sequence[Finding],
    excluded: Sequence[ExcludedFinding] = (),
    *,
    scan_id: str = "",
    excluded_unknown_diameter_mm: float = EXCLUDED_UNKNOWN_DIAMETER_MM,
) -> ScanMatch:
    """Match one scan's findings to its ground-truth nodules by the LUNA16 rules (``evaluate.matching``).

    Args:
        gt: ground-truth nodules, world mm.
        findings: detections, world mm; ``probability`` ranks the hits of a nodule.
        excluded: irrelevant findings (``ScanRecord.excluded``); an unknown diameter uses
            ``excluded_unknown_diameter_mm``.
        scan_id: named in error messages and kept in the result.
        excluded_unknown_diameter_mm: diameter (mm) of excluded findings of unknown size.

    Returns:
        The per-nodule matches and per-finding statuses.

    Raises:
        InputError: a nodule that is not a ``NoduleGT``, a non-finite finding centre or diameter, a
            probability outside [0, 1], an unknown Lung-RADS category, an excluded entry that is not an
            ``ExcludedFinding``, or a non-positive ``excluded_unknown_diameter_mm``.
    """
    _validate(gt, findings, excluded, scan_id)
    m = luna16_match(
        np.asarray([g.center_xyz_mm for g in gt], dtype=np.float64).reshape(-1, 3),
        np.asarray([g.diameter_mm for g in gt], dtype=np.float64),
        np.asarray([f.center_xyz_mm for f in findings], dtype=np.float64).reshape(-1, 3),
        np.asarray([f.probability for f in findings], dtype=np.float64),
        *excluded_arrays(excluded, excluded_unknown_diameter_mm),
    )
    gt_match = tuple(int(b) if b >= 0 else None for b in m.best)
    return ScanMatch(tuple(gt), tuple(findings), gt_match, m.status, scan_id)


@dataclass(frozen=True)
class MatchedPair:
    """A detected nodule: a ground-truth nodule and its matched finding.

    Attributes:
        scan_index: position of the scan in the sequence of matches.
        gt_index: index of the nodule in ``ScanMatch.gt``.
        finding_index: index of the finding in ``ScanMatch.findings``.
        gt: the nodule.
        finding: the finding.
        scan_id: the scan's id.
    """

    scan_index: int
    gt_index: int
    finding_index: int
    gt: NoduleGT
    finding: Finding
    scan_id: str = ""

    @property
    def distance_mm(self) -> float:
        """World distance (mm) between the finding's centre and the nodule's centre."""
        d = np.asarray(self.finding.center_xyz_mm, dtype=np.float64) - np.asarray(self.gt.center_xyz_mm)
        return float(np.sqrt(np.sum(d**2)))


def check_threshold(threshold: float) -> float:
    """The operating threshold as a float in [0, 1], or ``InputError``."""
    if not 0.0 <= threshold <= 1.0:  # also rejects NaN
        raise InputError(f"threshold must be in [0, 1], got {threshold}")
    return float(threshold)


def detected_pairs(matches: Sequence[ScanMatch], threshold: float = 0.5) -> list[MatchedPair]:
    """The nodules detected at ``threshold``: matched, with a finding probability >= ``threshold``.

    The callers that compute segmentation Dice walk these pairs to build the (predicted, truth) masks.

    Raises:
        InputError: a threshold outside [0, 1].
    """
    t = check_threshold(threshold)
    out: list[MatchedPair] = []
    for s, m in enumerate(matches):
        for i, j in enumerate(m.gt_match):
            if j is not None and m.findings[j].probability >= t:
                out.append(MatchedPair(s, i, j, m.gt[i], m.findings[j], m.scan_id))
    return out


def size_band(diameter_mm: float) -> str:
    """Size band of a nodule diameter (mm): ``"<6"``, ``"6-8"``, ``"8-15"`` or ``">=15"``.

    Bands are half-open, ``[6, 8)`` etc., on the diameter as given (not rounded to 0.1 mm as Lung-RADS
    does), so 8.0 mm is in ``"8-15"`` and 7.99 mm in ``"6-8"``.
    """
    return SIZE_BANDS[int(np.searchsorted(_BAND_EDGES_MM, diameter_mm, side="right"))]


def _check_mask(m: np.ndarray, what: str) -> np.ndarray:
    m = np.asarray(m)
    if m.dtype != np.bool_:
        raise InputError(
            f"{what} must be a boolean array, got dtype {m.dtype}",
            fix="threshold it first, e.g. mask > 0.5",
        )
    return m


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of two boolean masks of the same shape.

    Returns:
        Dice in [0, 1]; ``nan`` when both masks are empty (undefined: there is nothing to segment).

    Raises:
        InputError: masks that are not boolean or differ in shape.
    """
    a, b = _check_mask(a, "dice: first mask"), _check_mask(b, "dice: second mask")
    if a.shape != b.shape:
        raise InputError(f"dice: masks must have the same shape, got {a.shape} and {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(a & b)) / total


def _check_box(box: BoxMask, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(box, BoxMask):
        raise InputError(f"{what} must be a BoxMask (offset_zyx, mask), got a {type(box).__name__}")
    mask = _check_mask(box.mask, f"{what} mask")
    off = np.asarray(box.offset_zyx)
    if off.shape != (3,) or not np.issubdtype(off.dtype, np.integer) or mask.ndim != 3:
        raise InputError(
            f"{what} needs an integer (z, y, x) offset and a 3-D mask, got offset {box.offset_zyx!r} and "
            f"mask shape {mask.shape}"
        )
    return off.astype(np.int64), mask


def box_dice(predicted: BoxMask, truth: BoxMask) -> float | None:
    """Dice of two boolean masks given as boxes (``annotations.masks.BoxMask``) on the same voxel grid.

    Equal to the Dice of both masks pasted into their union box: voxels outside a box are background, so
    ``|A|`` and ``|B|`` are the masks' own sums and ``|A & B|`` can only be non-zero where the boxes
    overlap; only that overlap is compared, without allocating the union.

    Example: a 2 x 2 x 2 cube at offset (0, 0, 0) and another at (1, 0, 0) share 4 voxels -> 8 / 16 = 0.5.

    Args:
        predicted: the segmentation's box mask.
        truth: the ground truth's box mask, same grid.

    Returns:
        Dice in [0, 1], or ``None`` when both masks are empty (undefined).

    Raises:
        InputError: not a ``BoxMask``, or a malformed one (non-integer offset, not 3-D, not boolean).
    """
    off_a, a = _check_box(predicted, "predicted")
    off_b, b = _check_box(truth, "truth")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return None
    lo = np.maximum(off_a, off_b)
    hi = np.minimum(off_a + a.shape, off_b + b.shape)
    if np.any(hi <= lo):
        return 0.0
    sa = tuple(slice(int(s), int(e)) for s, e in zip(lo - off_a, hi - off_a, strict=True))
    sb = tuple(slice(int(s), int(e)) for s, e in zip(lo - off_b, hi - off_b, strict=True))
    return 2.0 * int(np.count_nonzero(a[sa] & b[sb])) / total


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney statistic: P(score of a positive > score of a negative), ties 0.5.

    Computed from mid-ranks: ``(R+ - n+ (n+ + 1) / 2) / (n+ n-)`` with ``R+`` the rank sum of positives.
    Example: scores [0.1, 0.4, 0.35, 0.8], labels [0, 0, 1, 1]: of the 4 positive-negative pairs,
    0.35 > 0.1, 0.35 < 0.4, 0.8 > both -> 3 / 4 = 0.75.

    Returns:
        AUC in [0, 1], or ``None`` when either class is missing.

    Raises:
        InputError: lengths differ, non-finite scores, or labels other than 0/1.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise InputError(f"roc_auc: {s.size} scores but {y.size} labels")
    if not np.isfinite(s).all():
        raise InputError("roc_auc: scores must be finite")
    if y.size and not np.isin(y, (0, 1)).all():
        raise InputError(f"roc_auc: labels must be 0/1 or booleans, got {np.unique(y).tolist()}")
    pos = y.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # 1-based rank of each distinct value's first element
    mid_rank = first_rank + (counts - 1) / 2.0
    rank_sum = float(mid_rank[inverse][pos].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
