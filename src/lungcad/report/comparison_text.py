"""The report's comparison with a prior study (``lungcad.longitudinal.Comparison``), as plain values.

With a comparison the report is a follow-up report: each current nodule matched to the prior takes the
Lung-RADS v2022 category *with the prior rules* (new, growing, stable), so the findings table, the scan
category, the management text and the SR agree with the comparison section.  The finding numbers stay
those of the baseline ordering (they are the label map's and the SEG's numbers).  Resolved nodules have no
current finding: they are listed by their prior index.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from lungcad.longitudinal.contract import Comparison, NoduleChange
from lungcad.report.shown import ShownFinding

DAYS_PER_MONTH = 30.4375  # 365.25 / 12
FOLLOW_UP_RISK_NOTE = (
    "The Brock risk above is a baseline-screening model; on a follow-up scan the interval change and the "
    "volume doubling time take precedence (BTS 2015: a VDT under 400 days favours malignancy, over 600 days "
    "benignity)."
)
_STATUS_TEXT = {
    "new": "new",
    "stable": "stable",
    "growing": "growing",
    "shrinking": "shrinking",
    "resolved": "resolved",
}


def with_prior_categories(shown: list[ShownFinding], comparison: Comparison | None) -> list[ShownFinding]:
    """``shown`` with each matched or new nodule's Lung-RADS replaced by the comparison's (prior rules)."""
    if comparison is None:
        return shown
    by_index = {n.current_index: n for n in comparison.nodules if n.current_index is not None}
    out = []
    for s in shown:
        change = by_index.get(s.index)
        if change is not None and change.lung_rads is not None:
            s = dataclasses.replace(s, finding=dataclasses.replace(s.finding, lung_rads=change.lung_rads))
        out.append(s)
    return out


def _date(iso: str | None) -> str:
    return iso or "unknown"


def interval_text(days: int | None) -> str:
    """``365`` -> "365 days (12.0 months)"; unknown -> "unknown (a study date is missing)"."""
    if days is None:
        return "unknown (a study date is missing)"
    return f"{days} days ({days / DAYS_PER_MONTH:.1f} months)"


def _mm(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f} mm" if signed else f"{value:.1f} mm"


def doubling_text(n: NoduleChange) -> str:
    """The VDT cell: "210 d (150-350)", "no growth (> 773 d)" (95 % lower limit), "no growth", "-"."""
    vdt = n.doubling_time
    if vdt is None:
        return "-"
    if vdt.days is None:
        # no measured growth; the interval's lower end still bounds how fast it could be growing unseen
        return f"no growth (> {vdt.low_days:.0f} d)" if vdt.low_days is not None else "no growth"
    low = f"{vdt.low_days:.0f}" if vdt.low_days is not None else "?"
    high = f"{vdt.high_days:.0f}" if vdt.high_days is not None else "unbounded"
    return f"{vdt.days:.0f} d ({low}-{high})"


def _row(n: NoduleChange, numbers: dict[int, int]) -> dict[str, Any]:
    if n.current_index is not None and n.current_index in numbers:
        label = f"Nodule {numbers[n.current_index]}"
    elif n.current_index is not None:
        label = "below threshold"
    else:
        label = f"prior #{(n.prior_index or 0) + 1}"
    rads = n.lung_rads.value if n.lung_rads is not None else "-"
    return {
        "label": label,
        "status": _STATUS_TEXT.get(n.status.value, n.status.value),
        "diameters": f"{_mm(n.prior_diameter_mm)} -> {_mm(n.current_diameter_mm)}",
        "diameter_change": _mm(n.diameter_change_mm, signed=True),
        "volume_change": "-" if n.volume_change_pct is None else f"{n.volume_change_pct:+.0f} %",
        "doubling": doubling_text(n),
        "lung_rads": rads,
        "rule": n.lung_rads_rule,
    }


def _key_image_line(n: NoduleChange, prior_date: str | None) -> str:
    """The sentence under a key image: "Growing since 2000-01-02: 20.0 -> 23.9 mm (+3.9 mm), VDT ..."."""
    since = f" since {prior_date}" if prior_date else " since the prior"
    if n.status.value == "new":
        return f"New{since}."
    text = f"{n.status.value.capitalize()}{since}: {_mm(n.prior_diameter_mm)} -> {_mm(n.current_diameter_mm)}"
    text += f" ({_mm(n.diameter_change_mm, signed=True)})" if n.diameter_change_mm is not None else ""
    return text + (f", VDT {doubling_text(n)}." if n.doubling_time is not None else ".")


def comparison_context(comparison: Comparison | None, shown: list[ShownFinding]) -> dict[str, Any] | None:
    """The template's ``comparison`` block, or None without a comparison."""
    if comparison is None:
        return None
    numbers = {s.index: s.number for s in shown}
    # shown nodules first in report order, then those below the threshold, then the resolved ones
    order = sorted(
        comparison.nodules,
        key=lambda n: (
            n.current_index is None,
            numbers.get(n.current_index, 10**6) if n.current_index is not None else n.prior_index or 0,
        ),
    )
    reg = comparison.registration
    counts = comparison.counts()
    return {
        "prior_date": _date(comparison.prior.study_date),
        "current_date": _date(comparison.current.study_date),
        "prior_study_uid": comparison.prior.study_uid or "-",
        "prior_series_uid": comparison.prior.series_uid or "-",
        "interval": f"{interval_text(comparison.interval_days)}, "
        f"{_date(comparison.prior.study_date)} to {_date(comparison.current.study_date)}",
        "registration": (
            f"{reg.method}, lung Dice {reg.lung_dice_before:.2f} -> {reg.lung_dice:.2f}, "
            f"mean surface distance {reg.mean_surface_distance_mm:.1f} mm"
            + ("" if reg.ok else " - POOR: matches are unreliable, compare the images directly")
        ),
        "registration_ok": reg.ok,
        "counts": ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no nodules on either scan",
        "priority": comparison.priority.value if comparison.priority is not None else "-",
        "rows": [_row(n, numbers) for n in order],
        "by_number": {
            numbers[n.current_index]: _key_image_line(n, comparison.prior.study_date)
            for n in comparison.nodules
            if n.current_index in numbers
        },
        "warnings": list(comparison.warnings),
        "risk_note": FOLLOW_UP_RISK_NOTE,
    }


def iso_to_da(iso: str | None) -> str | None:
    """ "2017-03-14" -> "20170314" (DICOM DA); None or malformed -> None."""
    try:
        return date.fromisoformat(iso).strftime("%Y%m%d") if iso else None
    except ValueError:
        return None
