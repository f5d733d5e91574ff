"""The Brock (PanCan) risk as the report shows it: the number, the inputs (assumed ones flagged), one line.

Reading the risk needs what it rests on, so every input is printed with where it came from, and an input
that was not known (the model then used its stand-in: 62 years, the male reference, absent) carries an
asterisk.  Calcified nodules: "not applicable" (benign pattern; the model excludes them).  A result written
before schema 2.2 has no risk: "not computed".
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lungcad.annotations.brock import PANCAN_AGE_RANGE_YEARS, brock_risk
from lungcad.contracts import MalignancyRisk, RiskInputSource
from lungcad.infer.risk import brock_inputs_of
from lungcad.types import Finding

ASSUMED_MARK = "*"
NOT_APPLICABLE = "not applicable"
NOT_COMPUTED = "not computed"
TERM_NAMES = {
    "age": "age",
    "sex": "female sex",
    "family_history": "family history",
    "emphysema": "emphysema",
    "size": "size",
    "type": "type",
    "upper_lobe": "upper-lobe location",
    "count": "nodule count",
    "spiculation": "spiculation",
}
_SOURCE = {
    RiskInputSource.DICOM: "DICOM",
    RiskInputSource.REQUEST: "given",
    RiskInputSource.CT: "CT",
    RiskInputSource.FINDINGS: "CAD",
}
RISK_NOTE = (
    "Brock (PanCan) full model 2b, McWilliams et al., N Engl J Med 2013: probability that a nodule on a "
    "baseline screening CT is, or becomes, lung cancer. Validated on baseline scans of 50-75-year-old "
    "smokers; not a model of growth on follow-up. "
    f"{ASSUMED_MARK} not known: the model's stand-in was used (age 62 years, male reference, absent). "
    "Emphysema: % of lung below -950 HU >= 5 % (the paper scored it visually); upper lobe: upper third of "
    "the lungs' height (no lobe segmentation); size: longest axial diameter of the segmentation."
)


def percent(probability: float) -> str:
    """0.2266 -> "22.7 %", 0.00421 -> "0.42 %" (two significant places below 1 %)."""
    pct = 100.0 * probability
    return f"{pct:.1f} %" if pct >= 1.0 else f"{pct:.2f} %"


def risk_cell(f: Finding) -> str:
    r = f.malignancy_risk
    if r is None:
        return NOT_COMPUTED
    return NOT_APPLICABLE if r.probability is None else percent(r.probability)


def _yes_no(value: bool | None) -> str:
    return "yes" if value else "no"


def _shown(value: str, source: RiskInputSource) -> str:
    return f"{value} ({_SOURCE[source]})" if source in _SOURCE else value


def risk_inputs(r: MalignancyRisk) -> dict[str, str]:
    """Each input as a cell: "65 y (DICOM)", "no, LAA 2.6 % (CT)", "unknown*"."""
    i, src = r.inputs, r.inputs.sources
    unknown = "unknown" + ASSUMED_MARK

    def cell(name: str, value: Any, text: str) -> str:
        source = src.get(name, RiskInputSource.UNKNOWN)
        return unknown if value is None or source is RiskInputSource.UNKNOWN else _shown(text, source)

    emphysema = _yes_no(i.emphysema)
    if i.emphysema_laa950_percent is not None and src.get("emphysema") is RiskInputSource.CT:
        emphysema += f", LAA {i.emphysema_laa950_percent:.1f} %"
    return {
        "age": cell("age", i.age_years, f"{i.age_years:.0f} y" if i.age_years is not None else ""),
        "sex": cell("sex", i.sex, i.sex or ""),
        "family_history": cell("family_history", i.family_history, _yes_no(i.family_history)),
        "emphysema": cell("emphysema", i.emphysema, emphysema),
        "upper_lobe": cell("upper_lobe", i.upper_lobe, _yes_no(i.upper_lobe)),
        "count": cell("nodule_count", i.nodule_count, str(i.nodule_count)),
        "spiculation": cell("spiculation", i.spiculation, _yes_no(i.spiculation)),
        "size": f"{i.diameter_mm:.1f} mm" + ("" if src.get("size") is RiskInputSource.CT else " (headline)"),
    }


def worst_case(r: MalignancyRisk) -> float | None:
    """The probability with every unknown input at its riskiest: age 75 (PanCan's oldest), female, and
    each unknown yes/no input present.  None when nothing was unknown or the model does not apply.

    Why: a stand-in is the *lowest*-risk reading of a missing input, so the printed risk is a lower bound
    for the inputs nobody gave; the reader sees how far it could go.
    """
    if not r.applicable or not r.assumed:
        return None
    i = brock_inputs_of(r)
    flags = ("family_history", "emphysema", "upper_lobe", "spiculation")
    worst = dataclasses.replace(
        i,
        age_years=PANCAN_AGE_RANGE_YEARS[1] if i.age_years is None else i.age_years,
        sex="female" if i.sex is None else i.sex,
        **{k: True for k in flags if getattr(i, k) is None},
    )
    return brock_risk(worst).probability


def risk_explanation(f: Finding) -> str:
    """One line: what raises the risk most, how many inputs were assumed, and the caveats."""
    r = f.malignancy_risk
    if r is None:
        return "Brock risk not computed (a result written before schema 2.2): run lungcad detect again."
    if not r.applicable:
        return "Calcified (benign pattern): the Brock model does not apply."
    raising = sorted(((v, k) for k, v in r.terms.items() if k != "intercept" and v > 0.05), reverse=True)
    names = TERM_NAMES | {"type": f"{r.inputs.nodule_type.value} type"}
    parts = [f"{names.get(k, k)} {v:+.2f}" for v, k in raising[:2]]
    line = f"{percent(r.probability or 0.0)}: "
    line += (
        f"raised most by {' and '.join(parts)} log-odds" if parts else "no input raises it above the baseline"
    )
    if r.assumed:
        n = len(r.assumed)
        line += f"; {n} input{'s' if n > 1 else ''} not known ({ASSUMED_MARK})"
        high = worst_case(r)
        if high is not None and high > (r.probability or 0.0):
            line += f", up to {percent(high)} if {'they were' if n > 1 else 'it were'} unfavourable"
    extra = [n for n in r.notes if not n.startswith(("upper lobe:", "size:"))]  # shown in the cells
    return line + "." + "".join(f" {n[0].upper()}{n[1:]}." for n in extra)


def risk_row(number: int, f: Finding) -> dict[str, Any]:
    """The template's row of the risk table for finding ``number``."""
    r = f.malignancy_risk
    row: dict[str, Any] = {"number": number, "risk": risk_cell(f), "explanation": risk_explanation(f)}
    row["inputs"] = risk_inputs(r) if r is not None and r.applicable else None
    return row
