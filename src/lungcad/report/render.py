"""``render_report(result, volume, out) -> ReportFiles``: the one entry point of the clinical report.

Writes, next to ``result.json`` in ``out``::

    nodules.nii.gz, nodules.json      label map of the shown findings on the input grid (3D Slicer, NiiVue)
    report/report.html, report.pdf    the clinician report (one Jinja2 template)
    report/figures/*.png              key images per finding, coronal MIP, 3-D view
    report/lungs_3d.html              interactive 3-D view (self-contained)
    dicom/seg.dcm, sr.dcm, report_pdf.dcm   DICOM SEG, Comprehensive 3D SR (TID 1500), Encapsulated PDF
    report_input.json                 what ``lungcad report DIR`` needs to render it again

The CLI (``detect --report``, ``report``) and the service call this same function.  Patient identifiers
are read from the source DICOM headers into the report only; nothing here logs them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json, atomic_write_text
from lungcad.preprocess.lung_mask import LungMask
from lungcad.preprocess.pipeline import Preprocessed
from lungcad.report.comparison_text import comparison_context, with_prior_categories
from lungcad.report.dicom_common import producer, software_version
from lungcad.report.guidance import guidance, scan_category
from lungcad.report.html import Figures, qa_failed, render_html, report_context
from lungcad.report.masks import LabelMap, build_label_map, write_label_map
from lungcad.report.pdf import html_to_pdf, write_pdf
from lungcad.report.shown import ReportOptions, ShownFinding, shown_findings
from lungcad.report.source import source_datasets, study_header
from lungcad.types import CTVolume, ScanResult

if TYPE_CHECKING:
    from lungcad.longitudinal.contract import Comparison

INPUT_NAME = "report_input.json"


@dataclass
class ReportFiles:
    """What ``render_report`` wrote (``None``: not written, ``skipped`` says why)."""

    folder: Path
    html: Path | None = None
    pdf: Path | None = None
    figures: list[Path] = field(default_factory=list)
    view3d: Path | None = None
    labels: Path | None = None
    seg: Path | None = None
    sr: Path | None = None
    pdf_dicom: Path | None = None
    input: Path | None = None
    skipped: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        """The written files by name, for the CLI's "wrote ..." lines."""
        named = {
            "report_html": self.html,
            "report_pdf": self.pdf,
            "view_3d": self.view3d,
            "nodule_labels": self.labels,
            "dicom_seg": self.seg,
            "dicom_sr": self.sr,
            "dicom_pdf": self.pdf_dicom,
        }
        out = {k: str(v) for k, v in named.items() if v is not None}
        if self.figures:
            out["report_figures"] = str(self.figures[0].parent)
        return out


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings, self.t0 = timings, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + now - self.t0, 4)
        self.t0 = now


def calibration_text(card: dict) -> str | None:
    """One line from a model card's ``calibration`` entry, e.g. "temperature scaling, fitted on
    runs/shipped_v2 (22 scans)"; ``None`` when the card has none."""
    cal = card.get("calibration") if isinstance(card, dict) else None
    if not isinstance(cal, dict):
        return None
    method = {"temperature": "temperature scaling"}.get(
        str(cal.get("method")), str(cal.get("method") or "fitted")
    )
    text = f"{method}, fitted on {cal.get('source', 'unknown data')}"
    if cal.get("n_scans"):
        text += f" ({cal['n_scans']} scans)"
    if cal.get("warning"):
        text += f"; warning: {cal['warning']}"
    return text


def lung_midline_x(lungs: LungMask | None) -> float | None:
    """World x (mm) halfway between the lungs' outer edges, or ``None`` without a lung mask."""
    if lungs is None or not lungs.mask.any():
        return None
    xs = np.nonzero(lungs.mask.any(axis=(0, 1)))[0]
    ends = lungs.grid.voxel_to_world(np.array([[0, 0, xs[0]], [0, 0, xs[-1]]], float))
    return float(ends[:, 0].mean())


def _figures(result, volume, labels, shown, lungs, pre, model, options, folder, files, clock) -> Figures:
    from lungcad.report.figures import finding_views, mip, surface

    fig_dir = folder / "figures"
    paths: dict[int, str] = {}
    for s in shown:
        cam = None
        if options.explain and model is not None and pre is not None:
            from lungcad.report.figures.gradcam import gradcam_cube

            cam = gradcam_cube(model, pre.image, pre.volume.grid, s.finding)
            clock.lap("gradcam")
        path = finding_views.render_finding(
            s, volume, labels.labels, fig_dir / f"nodule_{s.number:02d}.png", cam
        )
        files.figures.append(path)
        paths[s.number] = f"figures/{path.name}"
    if options.explain and (model is None or pre is None):
        files.skipped.append("Grad-CAM: needs the model and the preprocessed scan (run detect --explain)")
    clock.lap("finding_figures")
    if lungs is None or not lungs.mask.any():
        files.skipped.append("overview figures: no lung mask")
        return Figures(paths)
    mip_path = mip.render_mip(volume, lungs, shown, fig_dir / "overview_mip.png")
    files.figures.append(mip_path)
    clock.lap("mip")
    lung_mesh = surface.lung_mesh(lungs)
    nodules = surface.nodule_meshes(labels.labels, volume, shown)
    png = surface.render_png(lung_mesh, nodules, shown, fig_dir / "overview_3d.png")
    files.figures.append(png)
    files.view3d = surface.render_html(lung_mesh, nodules, shown, folder / "lungs_3d.html")
    clock.lap("surface")
    return Figures(paths, f"figures/{mip_path.name}", f"figures/{png.name}", files.view3d.name)


def _dicom(
    result, volume, sources, labels, shown, pdf, category, midline, out, files, clock, comparison
) -> None:
    import highdicom as hd

    from lungcad.report.dicom_common import write_dataset
    from lungcad.report.dicom_pdf import build_pdf_dataset
    from lungcad.report.dicom_seg import build_seg
    from lungcad.report.dicom_sr import build_sr

    dicom_dir = out / "dicom"
    tracking = {s.number: str(hd.UID()) for s in shown}
    seg = None
    if shown:
        seg = build_seg(result, volume, sources, labels, shown, tracking)
        seg.SeriesDescription = "lungcad nodule segmentation"
        files.seg = write_dataset(seg, dicom_dir / "seg.dcm")
    else:
        files.skipped.append("DICOM SEG: no finding to segment")
    clock.lap("dicom_seg")
    verdict = "fail" if qa_failed(result) else result.qa.verdict.value
    sr = build_sr(result, volume, sources, shown, seg, tracking, category, verdict, midline, comparison)
    files.sr = write_dataset(sr, dicom_dir / "sr.dcm")
    clock.lap("dicom_sr")
    ds = build_pdf_dataset(pdf, sources[0], producer(result), "Lung nodule CAD report", references=[sr])
    files.pdf_dicom = write_dataset(ds, dicom_dir / "report_pdf.dcm")
    clock.lap("dicom_pdf")


def render_report(
    result: ScanResult,
    volume: CTVolume,
    out: str | Path,
    *,
    options: ReportOptions | None = None,
    pre: Preprocessed | None = None,
    lungs: LungMask | None = None,
    label_map: LabelMap | None = None,
    model: nn.Module | None = None,
    comparison: Comparison | None = None,
) -> ReportFiles:
    """Render the clinician report, its figures and the DICOM objects for one analysed scan.

    Args:
        result: the scan's result (``Detector.run(...).result`` or read back from ``result.json``).
        volume: the input scan (``DetectionOutput.volume``).
        out: the result folder (``result.json``'s folder); created if missing.
        options: threshold, study kind, explanation, calibration text, DICOM on/off.
        pre: the preprocessed scan (``DetectionOutput.pre``): the findings' masks lie on its grid, and
            its lung mask draws the overview.  Without it the lung mask is recomputed.
        lungs: the lung mask when ``pre`` is not given (``None``: segmented again).
        label_map: the nodule labels to use instead of building them (``lungcad report`` reads them from
            ``nodules.nii.gz``); numbers must be the report's finding numbers.
        model: the detector's torch network, for Grad-CAM (``options.explain``).
        comparison: this scan against a prior one (``lungcad compare``): adds the comparison section to
            the report and the SR, and the matched nodules take their Lung-RADS with the prior rules
            (``comparison_text``).  ``comparison.current.series_uid`` must be this result's series.

    Returns:
        The files written; ``skipped`` names what was not written and why (e.g. DICOM objects for a
        NIfTI input, which has no source series to reference).
    """
    options = options or ReportOptions()
    out = Path(out)
    folder = out / "report"
    files = ReportFiles(folder)
    clock = _Clock(files.timings_s)
    if comparison is not None and comparison.current.series_uid not in ("", result.series_uid):
        raise InputError(
            f"the comparison is of series {comparison.current.series_uid}, the result of {result.series_uid}",
            fix="pass the comparison whose current scan is this result's",
        )
    shown: list[ShownFinding] = with_prior_categories(
        shown_findings(result, options.min_probability), comparison
    )
    if lungs is None:
        if pre is not None:
            lungs = pre.lungs
        else:
            from lungcad.preprocess.lung_mask import segment_lungs

            lungs = segment_lungs(volume)
    if label_map is None:
        label_map = build_label_map(shown, volume, pre.volume.grid if pre is not None else None)
    files.labels = write_label_map(volume, label_map, out)
    clock.lap("labels")
    # The patient header and the image numbers come from the source headers too: --no-dicom skips the
    # DICOM objects, not the header (only a series that was moved away then leaves the header empty).
    try:
        sources = source_datasets(volume)
    except InputError:
        if options.dicom:
            raise
        sources = None
    header = study_header(volume, sources[0] if sources else None)
    clock.lap("source_headers")
    midline = lung_midline_x(lungs)
    image_numbers = {}
    if sources:
        from lungcad.report.dicom_common import nearest_source

        for s in shown:
            ds = sources[nearest_source(volume, sources, s.finding.center_xyz_mm)]
            if "InstanceNumber" in ds and ds.InstanceNumber is not None:
                image_numbers[s.number] = f"image {ds.InstanceNumber}"
    figures = _figures(result, volume, label_map, shown, lungs, pre, model, options, folder, files, clock)
    failed = qa_failed(result)
    advice = guidance(shown, options.study_kind, failed)
    category = scan_category(shown, failed)
    context = report_context(
        result,
        volume,
        header,
        shown,
        advice,
        figures,
        options,
        label_map.sources,
        midline,
        software_version(),
        image_numbers,
        comparison_context(comparison, shown),
    )
    html = render_html(context)
    files.html = atomic_write_text(folder / "report.html", html)
    clock.lap("html")
    pdf = html_to_pdf(html, folder)
    files.pdf = write_pdf(pdf, folder / "report.pdf")
    clock.lap("pdf")
    if not options.dicom:
        files.skipped.append("DICOM objects: turned off")
    elif sources is None:
        files.skipped.append("DICOM SEG / SR / PDF: the scan is not a DICOM series (nothing to reference)")
    else:
        _dicom(
            result, volume, sources, label_map, shown, pdf, category, midline, out, files, clock, comparison
        )
    files.input = atomic_write_json(
        out / INPUT_NAME,
        {
            "scan": str(Path(volume.metadata.source_path).resolve()) if volume.metadata.source_path else None,
            "series_uid": result.series_uid,
            "min_probability": options.min_probability,
            "study_kind": options.study_kind.value,
            "calibration": options.calibration,
            "labels": {str(s.number): s.index for s in shown},
        },
    )
    return files
