"""The clinician report's content (one context dict) and its HTML (Jinja2, ``template/report.html.j2``).

The same HTML becomes the PDF (``pdf.py``), so what a clinician reads on screen and on paper is one text.
The rules a reader relies on:

* QA failed (any check ``fail``, or the scan could not be analysed): a red banner "results not reliable"
  with the reasons, and never a reassuring "no nodules" -- the summary says nodules are *not excluded*.
* No shown finding and QA not failed: "No nodule found", with the QA status beside it.
* Findings sorted by Lung-RADS then size (``shown.py``); per-scan Lung-RADS with its management text, or
  Fleischner 2017 for incidental studies (``guidance.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from lungcad.report.figures.finding_views import finding_title
from lungcad.report.figures.style import RADS_COLOURS
from lungcad.report.guidance import Guidance, fleischner_line
from lungcad.report.masks import SPHERE
from lungcad.report.risk_text import RISK_NOTE, percent, risk_row
from lungcad.report.shown import ReportOptions, ShownFinding, StudyKind
from lungcad.report.source import StudyHeader
from lungcad.types import CheckStatus, CTVolume, ScanResult, ScanStatus

DISCLAIMER = (
    "lungcad is open-source research software. It is not a medical device, is not cleared or approved "
    "for clinical use, and does not replace reading the images. Probabilities are calibrated on the data "
    "named above and may not transfer to other scanners or populations."
)
DIAMETER_NOTE = (
    "volume-equivalent diameter of the segmented nodule (the size head's estimate when the segmentation "
    "failed)."
)


@dataclass(frozen=True)
class Figures:
    """Paths relative to the HTML file's folder."""

    findings: dict[int, str]
    mip: str | None = None
    surface_png: str | None = None
    surface_html: str | None = None


def qa_failed(result: ScanResult) -> bool:
    return result.status is ScanStatus.QA_FAILED or result.qa.verdict is CheckStatus.FAIL


def _banner(result: ScanResult) -> dict[str, Any] | None:
    failed = [c for c in result.qa.checks if c.status is CheckStatus.FAIL]
    warned = [c for c in result.qa.checks if c.status is CheckStatus.WARN]
    if result.status is ScanStatus.QA_FAILED:
        lines = [f"The scan could not be analysed: {result.reason or 'QA failed'}."]
        lines += [f"{c.name}: {c.message}" for c in failed]
        return {
            "level": "fail",
            "title": "QA FAILED - results not reliable; no detection was run",
            "lines": lines,
        }
    if failed:
        lines = [f"{c.name}: {c.message}" for c in failed]
        lines.append("Detection ran, but nodules may be missed or mis-measured: read the images in full.")
        return {"level": "fail", "title": "QA FAILED - results not reliable", "lines": lines}
    if warned:
        return {"level": "warn", "title": "QA warnings", "lines": [f"{c.name}: {c.message}" for c in warned]}
    return None


def _summary(result: ScanResult, shown: list[ShownFinding], threshold: float) -> str:
    verdict = result.qa.verdict.value
    if result.status is ScanStatus.QA_FAILED:
        return "Not analysed: no nodule assessment is possible for this scan (QA failed)."
    if not shown:
        if qa_failed(result):
            return (
                f"No nodule reached the reporting threshold (p >= {threshold:g}), but QA failed: "
                "nodules are NOT excluded."
            )
        return f"No nodule found (p >= {threshold:g}). QA: {verdict}."
    n = len(shown)
    top = shown[0].finding
    rads = f"Lung-RADS {top.lung_rads.value}" if top.lung_rads else "no Lung-RADS category"
    return (
        f"{n} nodule{'s' if n > 1 else ''} found; most urgent: {shown[0].label}, {top.diameter_mm:.1f} mm, "
        f"{rads}. QA: {verdict}."
    )


def _side(x_mm: float, midline_x_mm: float | None) -> str:
    if midline_x_mm is None:
        return "-"
    return "left" if x_mm > midline_x_mm else "right"  # LPS: +x is the patient's left


def _row(
    s: ShownFinding,
    volume: CTVolume,
    figures: Figures,
    midline: float | None,
    kind: StudyKind,
    multiple: bool,
    sources: dict[int, str],
    image_numbers: dict[int, str],
) -> dict[str, Any]:
    f = s.finding
    z = volume.world_to_voxel(f.center_xyz_mm)[0]
    slice_text = image_numbers.get(s.number) or f"{int(round(float(z))) + 1} of {volume.shape[0]}"
    guidance = (
        fleischner_line(s, multiple)
        if kind is StudyKind.INCIDENTAL
        else f"Lung-RADS {f.lung_rads.value if f.lung_rads else '-'} ({s.label})."
    )
    return {
        "number": s.number,
        "title": finding_title(s),
        "lung_rads": f.lung_rads.value if f.lung_rads else "-",
        "colour": RADS_COLOURS[f.lung_rads],
        "diameter": f"{f.diameter_mm:.1f} mm",
        "volume": f"{f.volume_mm3:.0f} mm³" if f.volume_mm3 is not None else "-",
        "texture": (f.texture.value if f.texture else "-") + (" mass" if f.lesion_kind == "mass" else ""),
        "side": _side(f.center_xyz_mm[0], midline),
        "centre": ", ".join(f"{v:.1f}" for v in f.center_xyz_mm),
        "slice": slice_text,
        "mean_hu": f"{f.hu_stats.mean_hu:.0f}" if f.hu_stats else "-",
        "probability": f"{f.probability:.2f}",
        "triage": f"{f.triage_probability:.2f}" if f.triage_probability is not None else "-",
        "figure": figures.findings.get(s.number, ""),
        "guidance": guidance
        + (
            f" Brock risk {percent(f.malignancy_risk.probability)}."
            if f.malignancy_risk is not None and f.malignancy_risk.probability is not None
            else ""
        ),
        "mask_note": "Outline: a sphere of the reported diameter (no segmentation mask for this finding)."
        if sources.get(s.number) == SPHERE
        else "",
    }


def _mm(value: float | None) -> str:
    return "-" if value is None else f"{value:g} mm"


def report_context(
    result: ScanResult,
    volume: CTVolume,
    header: StudyHeader,
    shown: list[ShownFinding],
    guidance: Guidance,
    figures: Figures,
    options: ReportOptions,
    mask_sources: dict[int, str],
    midline_x_mm: float | None = None,
    software: str = "",
    image_numbers: dict[int, str] | None = None,
    comparison: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, as plain values.

    ``comparison`` is ``comparison_text.comparison_context``'s block (None: no prior study).

    ``image_numbers`` maps a finding number to the centre slice as a viewer numbers it ("image 91": the
    source slice's InstanceNumber); without it the slice is counted in the volume ("91 of 133").
    """
    multiple = (
        len([s for s in shown if s.finding.texture is None or s.finding.texture.value != "calcified"]) > 1
    )
    overview = []
    if figures.mip:
        overview.append({"src": figures.mip, "caption": "Coronal MIP, numbered findings"})
    if figures.surface_png:
        overview.append({"src": figures.surface_png, "caption": "3-D view, anterior"})
    provenance = [
        ("Model", f"{result.model_id or '-'} {result.model_version}".strip()),
        ("Configuration hash", result.config_hash or "-"),
        ("Calibration", options.calibration or "-"),
        ("Result schema", result.schema_version),
        ("Software", f"lungcad {software}".strip()),
        ("Analysis time", f"{result.timings_s.get('total', sum(result.timings_s.values())):.1f} s"),
    ]
    rows = [
        _row(
            s, volume, figures, midline_x_mm, options.study_kind, multiple, mask_sources, image_numbers or {}
        )
        for s in shown
    ]
    for row in rows:  # with a prior: each key image says how its nodule changed
        change = (comparison or {}).get("by_number", {}).get(row["number"])
        row["guidance"] += f" {change}" if change else ""
    return {
        "header": header,
        "series_uid": result.series_uid,
        "study_kind_text": "lung cancer screening (Lung-RADS v2022)"
        if options.study_kind is StudyKind.SCREENING
        else "incidental / diagnostic (Fleischner 2017)",
        "banner": _banner(result),
        "summary": _summary(result, shown, options.min_probability),
        "guidance": guidance,
        "rows": rows,
        "threshold": f"{options.min_probability:g}",
        "n_candidates": len(result.findings),
        "diameter_note": DIAMETER_NOTE,
        "overview": overview,
        "view3d": figures.surface_html,
        "qa_verdict": "not analysed"
        if result.status is ScanStatus.QA_FAILED and not result.qa.checks
        else result.qa.verdict.value,
        "qa_checks": [
            {"name": c.name.replace("_", " "), "status": c.status.value, "message": c.message}
            for c in result.qa.checks
        ],
        "provenance": provenance,
        "risk_rows": [risk_row(s.number, s.finding) for s in shown],
        "risk_note": RISK_NOTE,
        "comparison": comparison,
        "disclaimer": DISCLAIMER,
        "fmt_mm": _mm,
    }


def render_html(context: dict[str, Any]) -> str:
    """The report HTML (CSS inlined; images referenced relative to the HTML file)."""
    import jinja2
    from markupsafe import Markup

    folder = resources.files("lungcad.report") / "template"
    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.from_string((folder / "report.html.j2").read_text(encoding="utf-8"))
    css = (folder / "report.css").read_text(encoding="utf-8")
    return template.render(css=Markup(css), **context)  # the style sheet is ours: not escaped
