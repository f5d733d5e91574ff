"""Follow-up guidance the report prints: Lung-RADS v2022 (screening) or Fleischner 2017 (incidental).

Sources (paraphrased, not quoted):

* American College of Radiology, Lung-RADS v2022 assessment categories and management (November 2022);
  Christensen J et al., CHEST 2024;165(3):738-753.
* MacMahon H, Naidich DP, Goo JM, et al. Guidelines for Management of Incidental Pulmonary Nodules
  Detected on CT Images: From the Fleischner Society 2017. Radiology 2017;284(1):228-243.  For adults
  >= 35 years with incidental nodules; not for lung cancer screening, patients with a known cancer, or
  immunocompromised patients.  Size is the average of long and short axis there; the report uses the
  volume-equivalent diameter, which is close to it for round nodules (say so in the report).

A scan whose QA failed gets Lung-RADS 0 ("incomplete": part of the lungs cannot be evaluated) unless it
shows a finding of category 3 or higher: a missed nodule cannot be ruled out, so "1" or "2" would
reassure wrongly, but a 4B nodule needs its 4B management whatever else the scan hides (the report then
says the evaluation is incomplete).  With no shown finding and QA passed the scan is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from lungcad.report.shown import ShownFinding, StudyKind
from lungcad.types import LungRads, Texture

LUNG_RADS_0 = "0"

LUNG_RADS_MEANING: dict[str, str] = {
    LUNG_RADS_0: "Incomplete",
    LungRads.C1.value: "Negative",
    LungRads.C2.value: "Benign appearance or behaviour",
    LungRads.C3.value: "Probably benign",
    LungRads.C4A.value: "Suspicious",
    LungRads.C4B.value: "Very suspicious",
    LungRads.C4X.value: "Very suspicious, with additional features",
}

LUNG_RADS_MANAGEMENT: dict[str, str] = {
    LUNG_RADS_0: "Part or all of the lungs cannot be evaluated: repeat or complete the low-dose CT "
    "(or compare with a prior chest CT) in 1-3 months.",
    LungRads.C1.value: "Continue annual screening with low-dose CT in 12 months.",
    LungRads.C2.value: "Continue annual screening with low-dose CT in 12 months.",
    LungRads.C3.value: "Low-dose CT in 6 months.",
    LungRads.C4A.value: "Low-dose CT in 3 months; PET/CT may be considered when there is a solid "
    "component of 8 mm or more.",
    LungRads.C4B.value: "Referral for further clinical evaluation: diagnostic chest CT with or without "
    "contrast, PET/CT when there is a solid component of 8 mm or more, tissue sampling, as clinically "
    "indicated.",
    LungRads.C4X.value: "Referral for further clinical evaluation: diagnostic chest CT with or without "
    "contrast, PET/CT when there is a solid component of 8 mm or more, tissue sampling, as clinically "
    "indicated.",
}


@dataclass(frozen=True)
class Guidance:
    """What the report's recommendation box says."""

    system: str  # "Lung-RADS v2022" or "Fleischner Society 2017"
    category: str | None  # the per-scan Lung-RADS category ("0", "1", ..., "4X"); None for Fleischner
    headline: str
    lines: tuple[str, ...]


def scan_category(shown: list[ShownFinding], qa_failed: bool) -> str:
    """Per-scan Lung-RADS: the most urgent shown finding's category (1 with none); when QA failed, 0
    unless that category is 3 or higher (rule in the module docstring)."""
    ranked = [s.finding.lung_rads for s in shown if s.finding.lung_rads is not None]
    top = max(ranked, key=lambda c: c.rank) if ranked else LungRads.C1
    if qa_failed and top.rank < LungRads.C3.rank:
        return LUNG_RADS_0
    return top.value


def _fleischner_solid(d: float, multiple: bool) -> str:
    if d < 6:
        return "no routine follow-up (low risk); optional CT at 12 months (high risk)"
    if d <= 8:
        if multiple:
            return (
                "CT at 3-6 months, then consider CT at 18-24 months (low risk) / CT at 18-24 months "
                "(high risk)"
            )
        return (
            "CT at 6-12 months, then consider CT at 18-24 months (low risk) / CT at 18-24 months (high risk)"
        )
    if multiple:
        return "CT at 3-6 months, then consider CT at 18-24 months"
    return "consider CT at 3 months, PET/CT, or tissue sampling"


def _fleischner_subsolid(d: float, kind: Texture, multiple: bool) -> str:
    if multiple:
        if d < 6:
            return "CT at 3-6 months; if stable, consider CT at 2 and 4 years"
        return "CT at 3-6 months; further management by the most suspicious nodule"
    if d < 6:
        return "no routine follow-up"
    if kind is Texture.GROUND_GLASS:
        return "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years"
    return (
        "CT at 3-6 months to confirm persistence; if unchanged and the solid component stays < 6 mm, "
        "annual CT for 5 years"
    )


def fleischner_line(s: ShownFinding, multiple: bool) -> str:
    """One finding's Fleischner 2017 recommendation (single or multiple nodules)."""
    f = s.finding
    d = round(f.diameter_mm, 1)
    kind = f.texture or Texture.SOLID
    if kind is Texture.CALCIFIED:
        return f"{s.label} ({d:.1f} mm, calcified): benign calcification, no follow-up needed"
    if kind is Texture.SOLID:
        text = _fleischner_solid(d, multiple)
    else:
        text = _fleischner_subsolid(d, kind, multiple)
    return f"{s.label} ({d:.1f} mm {kind.value}): {text}"


def guidance(shown: list[ShownFinding], kind: StudyKind, qa_failed: bool) -> Guidance:
    """The recommendation box for a scan."""
    if kind is StudyKind.SCREENING:
        category = scan_category(shown, qa_failed)
        lines = (LUNG_RADS_MANAGEMENT[category],)
        if qa_failed and category != LUNG_RADS_0:
            lines += ("QA failed: the evaluation is incomplete, and nodules elsewhere are not excluded.",)
        return Guidance(
            "Lung-RADS v2022", category, f"Lung-RADS {category} - {LUNG_RADS_MEANING[category]}", lines
        )
    if qa_failed:
        lines = (
            "The scan could not be fully evaluated (QA failed): nodules are not "
            "excluded; repeat or complete the CT before applying the guidelines.",
        )
        return Guidance("Fleischner Society 2017", None, "Incomplete evaluation", lines)
    if not shown:
        return Guidance(
            "Fleischner Society 2017",
            None,
            "No pulmonary nodule shown",
            ("No nodule follow-up is recommended on the basis of this analysis.",),
        )
    solid = [s for s in shown if s.finding.texture is not Texture.CALCIFIED]
    multiple = len(solid) > 1
    lines = tuple(fleischner_line(s, multiple) for s in shown)
    note = (
        "Fleischner 2017 applies to incidental nodules in adults aged 35 or more, not to screening, "
        "known cancer or immunosuppression; low / high risk is a clinical judgement. Sizes are "
        "volume-equivalent diameters."
    )
    head = f"{'Multiple' if multiple else 'Single'} nodule{'s' if multiple else ''}"
    return Guidance("Fleischner Society 2017", None, head, (*lines, note))
