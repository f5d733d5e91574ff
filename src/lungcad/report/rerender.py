"""The two ways the CLI (and the service) make a report: right after detection, or again from a result folder.

* :func:`report_detection` -- ``lungcad detect SCAN --out DIR --report [--explain]``: everything is in
  memory (the masks on the preprocessed grid, the lung mask, the network for Grad-CAM).
* :func:`rerender` -- ``lungcad report DIR``: reads ``result.json``, the scan named in
  ``report_input.json`` (or ``--scan``), and the nodule masks saved in ``nodules.nii.gz``; the report's
  numbering follows the (possibly new) threshold, each finding keeping its own mask through its index in
  ``result.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lungcad.errors import InputError
from lungcad.infer.outputs import read_result_json
from lungcad.report.masks import LABELS_NAME, SPHERE, LabelMap, build_label_map, read_label_map
from lungcad.report.render import INPUT_NAME, ReportFiles, calibration_text, render_report
from lungcad.report.shown import ReportOptions, ShownFinding, StudyKind, shown_findings
from lungcad.types import CTVolume


def report_detection(
    run: Any,
    detector: Any,
    out: str | Path,
    *,
    min_probability: float,
    study_kind: StudyKind | str = StudyKind.SCREENING,
    explain: bool = False,
    comparison: Any = None,
) -> ReportFiles:
    """The report of a ``Detector.run`` output (``DetectionOutput``) next to its ``result.json``;
    ``comparison`` (``lungcad.longitudinal.Comparison``) adds the comparison with a prior study."""
    options = ReportOptions(
        min_probability=min_probability,
        study_kind=StudyKind(study_kind),
        explain=explain,
        calibration=calibration_text(detector.bundle.card),
    )
    if run.volume is None:
        raise InputError("the scan could not be loaded, so there is nothing to report on")
    return render_report(
        run.result, run.volume, out, options=options, pre=run.pre, model=detector.model, comparison=comparison
    )


def carry_labels(
    old: LabelMap, old_numbers: dict[int, int], shown: list[ShownFinding], volume: CTVolume
) -> LabelMap:
    """Renumber a saved label map for a new list of shown findings.

    Args:
        old: the label map read from ``nodules.nii.gz``.
        old_numbers: finding index in ``result.json`` -> its label in ``old``.
        shown: the findings the new report shows.
        volume: the input scan.

    A finding that had no label before (a lower threshold shows more) gets a sphere of its diameter.
    """
    labels = np.zeros_like(old.labels)
    sources: dict[int, str] = {}
    missing = []
    for s in shown:
        n = old_numbers.get(s.index)
        if n is None or not (old.labels == n).any():
            missing.append(s)
            continue
        labels[(old.labels == n) & (labels == 0)] = s.number
        sources[s.number] = old.sources.get(n, SPHERE)
    if missing:
        extra = build_label_map(missing, volume, None)
        free = labels == 0
        labels[free] = extra.labels[free]
        sources.update(extra.sources)
    return LabelMap(labels, sources)


def rerender(
    result_dir: str | Path,
    *,
    scan: str | Path | None = None,
    min_probability: float | None = None,
    study_kind: StudyKind | str | None = None,
    dicom: bool = True,
    comparison: Any = None,
) -> ReportFiles:
    """Render the report of a result folder again (``lungcad report DIR``); ``comparison``
    (``lungcad.longitudinal.Comparison`` of this scan against a prior) adds the comparison section.

    Options not given are taken from ``report_input.json`` (written by the first rendering), then from
    the defaults (``infer.report_threshold`` 0.5, screening).

    Raises:
        InputError: no ``result.json``; no scan path known (pass ``scan``); the scan is not the result's.
    """
    from lungcad.io import load_ct

    folder = Path(result_dir)
    result = read_result_json(folder / "result.json")
    saved: dict[str, Any] = {}
    if (folder / INPUT_NAME).is_file():
        saved = json.loads((folder / INPUT_NAME).read_text())
    source = scan or saved.get("scan")
    if not source:
        raise InputError(
            "the result folder does not say which scan it came from",
            path=folder,
            fix="pass --scan with the scan's DICOM folder or image file",
        )
    volume = load_ct(source, result.series_uid or None)
    if result.series_uid and volume.metadata.series_uid and volume.metadata.series_uid != result.series_uid:
        raise InputError(
            f"the scan is series {volume.metadata.series_uid}, the result is of {result.series_uid}",
            path=source,
            fix="pass the scan this result came from",
        )
    options = ReportOptions(
        min_probability=float(
            saved.get("min_probability", 0.5) if min_probability is None else min_probability
        ),
        study_kind=StudyKind(study_kind or saved.get("study_kind", StudyKind.SCREENING)),
        calibration=saved.get("calibration"),
        dicom=dicom,
    )
    shown = shown_findings(result, options.min_probability)
    note = None
    if (folder / LABELS_NAME).is_file():
        old = read_label_map(folder / LABELS_NAME, volume)
        numbers = {int(i): int(n) for n, i in saved.get("labels", {}).items()}
        label_map = carry_labels(old, numbers, shown, volume)
    else:
        label_map = build_label_map(shown, volume, None)
        if shown:
            note = (
                "nodule masks: no nodules.nii.gz in the result folder, outlines are spheres of the "
                "reported diameters (run `lungcad detect --report` to keep the segmentation)"
            )
    files = render_report(result, volume, folder, options=options, label_map=label_map, comparison=comparison)
    if note:
        files.skipped.append(note)
    return files
