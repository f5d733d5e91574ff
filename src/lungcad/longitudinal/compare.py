"""``compare_sides``: a current scan against a prior one -> ``Comparison`` (``comparison.json``).

Register (``registration``), map the prior centres into the current frame, match (``matching``), then per
nodule: interval change (Lung-RADS v2022 growth: > 1.5 mm mean diameter), diameter and volume change,
doubling time with its interval (``growth``), Lung-RADS with the prior rules
(``annotations.lungrads.lung_rads_with_prior``).  The CLI (``lungcad compare``) and the service
(``POST /api/v1/comparisons``) both call :func:`compare_scans` / :func:`compare_sides`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from lungcad.annotations.lungrads import (
    GROWTH_MM,
    IntervalChange,
    interval_change,
    lung_rads_category,
    lung_rads_with_prior,
    scan_priority,
)
from lungcad.config import PreprocessConfig
from lungcad.fileio import atomic_write_text
from lungcad.infer.detector import Detector
from lungcad.longitudinal.contract import Comparison, MatchingSettings, NoduleChange, StudyRef
from lungcad.longitudinal.growth import VOLUME_ERROR, doubling_time, sphere_volume_mm3
from lungcad.longitudinal.matching import MatchCandidate, match_nodules
from lungcad.longitudinal.registration import RegisteredPair, RegistrationSettings, register_lungs
from lungcad.longitudinal.sides import Side, check_same_patient, interval_days, iso_date, load_side
from lungcad.types import Finding, ScanResult

DEFAULT_MIN_PROBABILITY = 0.5  # the detector's infer.report_threshold default; callers pass theirs


@dataclass(frozen=True)
class CompareSettings:
    """Everything that decides a comparison (defaults are the documented ones, docs/compare.md)."""

    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    max_distance_mm: float = 15.0
    max_diameter_ratio: float = 3.0
    size_weight: float = 0.5
    min_probability: float = DEFAULT_MIN_PROBABILITY
    floor_probability: float = 0.2
    volume_error: float = VOLUME_ERROR
    allow_different_patients: bool = False

    def matching(self) -> MatchingSettings:
        return MatchingSettings(
            max_distance_mm=self.max_distance_mm,
            max_diameter_ratio=self.max_diameter_ratio,
            size_weight=self.size_weight,
            min_probability=self.min_probability,
            floor_probability=min(self.floor_probability, self.min_probability),
            growth_threshold_mm=GROWTH_MM,
            volume_error=self.volume_error,
        )


def _xyz(values: object) -> tuple[float, float, float]:
    return tuple(round(float(v), 3) for v in values)  # type: ignore[return-value,attr-defined]


def _volume(f: Finding) -> float:
    return float(f.volume_mm3) if f.volume_mm3 else sphere_volume_mm3(f.diameter_mm)


def _candidates(
    result: ScanResult, s: MatchingSettings, centres: list[tuple[float, float, float]] | None = None
):
    """(finding indices kept, match candidates) of one scan; ``centres`` replaces the centres (registered)."""
    keep = [k for k, f in enumerate(result.findings) if f.probability >= s.floor_probability]
    cands = [
        MatchCandidate(
            k,
            centres[n] if centres is not None else tuple(result.findings[k].center_xyz_mm),
            result.findings[k].diameter_mm,
            result.findings[k].probability >= s.min_probability,
        )
        for n, k in enumerate(keep)
    ]
    return keep, cands


def _change(
    cur: Finding | None,
    pri: Finding | None,
    ci: int | None,
    pj: int | None,
    registered: tuple[float, float, float] | None,
    distance: float | None,
    days: int | None,
    s: MatchingSettings,
) -> NoduleChange:
    if cur is not None and pri is not None:
        delta = round(round(cur.diameter_mm, 1) - round(pri.diameter_mm, 1), 1)
        status = interval_change(delta)
        v1, v2 = _volume(pri), _volume(cur)
        vdt = doubling_time(v1, v2, days, s.volume_error) if days else None
        change_pct = round(100.0 * (v2 / v1 - 1.0), 1)
    else:
        status = IntervalChange.NEW if cur is not None else IntervalChange.RESOLVED
        delta, vdt, change_pct = None, None, None
    category = baseline = None
    rule = "resolved: not on the current scan"
    if cur is not None:
        baseline = lung_rads_category(cur.diameter_mm, cur.texture, cur.solid_component_mm)
        category, rule = lung_rads_with_prior(
            status,
            cur.diameter_mm,
            cur.texture,
            cur.solid_component_mm,
            prior_diameter_mm=pri.diameter_mm if pri is not None else None,
            prior_solid_component_mm=pri.solid_component_mm if pri is not None else None,
            prior_texture=pri.texture if pri is not None else None,
            interval_days=days,
        )
    texture = (cur or pri).texture if (cur or pri) is not None else None  # type: ignore[union-attr]
    return NoduleChange(
        status=status,
        current_index=ci,
        prior_index=pj,
        current_center_xyz_mm=_xyz(cur.center_xyz_mm) if cur is not None else None,
        prior_center_xyz_mm=_xyz(pri.center_xyz_mm) if pri is not None else None,
        prior_center_registered_xyz_mm=registered,
        current_diameter_mm=round(cur.diameter_mm, 2) if cur is not None else None,
        prior_diameter_mm=round(pri.diameter_mm, 2) if pri is not None else None,
        current_volume_mm3=round(_volume(cur), 1) if cur is not None else None,
        prior_volume_mm3=round(_volume(pri), 1) if pri is not None else None,
        texture=texture,
        diameter_change_mm=delta,
        volume_change_pct=change_pct,
        doubling_time=vdt,
        registered_distance_mm=distance,
        current_probability=round(cur.probability, 4) if cur is not None else None,
        prior_probability=round(pri.probability, 4) if pri is not None else None,
        lung_rads=category,
        lung_rads_baseline=baseline,
        lung_rads_rule=rule,
    )


def _ref(side: Side, date: str | None, floor: float) -> StudyRef:
    n = sum(f.probability >= floor for f in side.result.findings)
    return StudyRef(side.study_uid, side.series_uid, date, side.source, n, side.result.model_version)


def compare_sides(
    current: Side,
    prior: Side,
    settings: CompareSettings | None = None,
    *,
    current_date: str | None = None,
    prior_date: str | None = None,
    registered: RegisteredPair | None = None,
) -> Comparison:
    """Compare two read sides (``sides.load_side``); dates override the scans' StudyDate (0008,0020).

    Raises:
        InputError: different patients (unless allowed), the prior after the current study, bad dates.
    """
    s = settings or CompareSettings()
    m = s.matching()
    warnings = [
        w for w in [check_same_patient(current, prior, allow_different=s.allow_different_patients)] if w
    ]
    c_date = iso_date(current_date, what="--current-date") or current.study_date
    p_date = iso_date(prior_date, what="--prior-date") or prior.study_date
    days = interval_days(c_date, p_date)
    if days is None:
        warnings.append(
            "a study date is unknown: no doubling times, growth read as within 12 months, no step-down "
            "of stable nodules (give --current-date / --prior-date)"
        )
    t0 = time.perf_counter()
    reg = registered or register_lungs(
        current.volume, current.lungs, prior.volume, prior.lungs, s.registration
    )
    t_reg = time.perf_counter() - t0
    if not reg.quality.ok:
        warnings.append(reg.quality.message)
    t0 = time.perf_counter()
    p_keep = [k for k, f in enumerate(prior.result.findings) if f.probability >= m.floor_probability]
    mapped = (
        [_xyz(p) for p in reg.prior_to_current([prior.result.findings[k].center_xyz_mm for k in p_keep])]
        if p_keep
        else []
    )
    c_keep, c_cands = _candidates(current.result, m)
    _, p_cands = _candidates(prior.result, m, mapped)
    matches = match_nodules(
        c_cands,
        p_cands,
        max_distance_mm=m.max_distance_mm,
        max_diameter_ratio=m.max_diameter_ratio,
        size_weight=m.size_weight,
    )
    nodules = []
    for match in matches:
        ci = c_keep[match.current] if match.current is not None else None
        pj = p_keep[match.prior] if match.prior is not None else None
        nodules.append(
            _change(
                current.result.findings[ci] if ci is not None else None,
                prior.result.findings[pj] if pj is not None else None,
                ci,
                pj,
                mapped[match.prior] if match.prior is not None else None,
                match.distance_mm,
                days,
                m,
            )
        )
    shown = [
        n.lung_rads
        for n in nodules
        if n.lung_rads is not None
        and n.current_probability is not None
        and n.current_probability >= m.min_probability
    ]
    return Comparison(
        current=_ref(current, c_date, m.floor_probability),
        prior=_ref(prior, p_date, m.floor_probability),
        interval_days=days,
        registration=reg.quality,
        matching=m,
        nodules=nodules,
        priority=scan_priority(shown),
        warnings=warnings,
        timings_s={"registration": round(t_reg, 3), "matching": round(time.perf_counter() - t0, 3)},
    )


def compare_scans(
    current: str | Path,
    prior: str | Path,
    *,
    detector: Detector | None = None,
    current_result: ScanResult | None = None,
    prior_result: ScanResult | None = None,
    settings: CompareSettings | None = None,
    current_date: str | None = None,
    prior_date: str | None = None,
    preprocess: PreprocessConfig | None = None,
) -> tuple[Comparison, Side, Side]:
    """Read both scans (detecting on each, or reusing its result.json) and compare them.

    ``preprocess`` (default: the detector's, else the defaults) is how a reused result's scan is
    preprocessed for its lung mask: the model's own settings, as at detection.
    """
    pre = preprocess or (detector.cfg.preprocess if detector is not None else None)
    t0 = time.perf_counter()
    cur = load_side(current, detector=detector, result=current_result, preprocess=pre)
    pri = load_side(prior, detector=detector, result=prior_result, preprocess=pre)
    t_read = time.perf_counter() - t0
    comparison = compare_sides(cur, pri, settings, current_date=current_date, prior_date=prior_date)
    comparison.timings_s = {"read": round(t_read, 3), **comparison.timings_s}
    return comparison, cur, pri


def comparison_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2) + "\n"


def write_comparison(comparison: Comparison, out_dir: str | Path) -> Path:
    """``out_dir/comparison.json``, written atomically (a temp file, then renamed)."""
    return atomic_write_text(Path(out_dir) / "comparison.json", comparison_json(comparison))
