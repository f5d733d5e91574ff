"""One analysis of one scan: detect, write ``result.json`` and its companions, and optionally the report.

:func:`analyse_scan` is the single entry point the CLI (``lungcad detect``) and the service
(``POST /analyses``, the Huey detect task) both call, so the two produce byte-identical ``result.json`` files
(apart from ``timings_s``) and the same DICOM objects.

Cancelling: ``progress`` is called between stages; an exception it raises ends the analysis and
propagates unchanged.  Whatever was already written to ``out_dir`` is then incomplete (``result.json``
is written before the report, for example), so an analysis is finished only when :func:`analyse_scan`
returns: a caller that others may read from (the service) writes into a temporary folder and renames it
into place afterwards, and deletes it when an exception comes out.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from lungcad.errors import InputError
from lungcad.infer.detector import DetectionOutput, Detector, ProgressFn
from lungcad.infer.outputs import write_outputs
from lungcad.infer.risk import RiskOptions, attach_risk
from lungcad.log import log_stage
from lungcad.report.shown import StudyKind
from lungcad.types import CTVolume, ScanResult

# Relative cost of the three parts of an analysis, for progress fractions.  On CPU the detection (mostly
# its network stage) dominates a full chest CT; the report (figures, 3-D view, PDF, DICOM SEG/SR/PDF) takes
# about as long as the network on the bundled slab (3.4 s against 1.4 s) but far less on a whole scan.
DETECT_WEIGHT = 80.0
WRITE_WEIGHT = 3.0
REPORT_WEIGHT = 17.0
STAGES = ("load", "preprocess", "network", "postprocess", "write", "report", "done")


@dataclass
class AnalysisOutput:
    """What :func:`analyse_scan` did.

    Attributes:
        run: the detector's output (``run.result`` is the ``ScanResult`` written to ``result.json``).
        files: what was written, name -> path: ``result``, ``candidates``, ``key_images`` (when a finding
            is shown), then the report's (``ReportFiles.as_dict``); empty without ``out_dir``.
        out_dir: the folder written to, or None.
        timings_s: seconds per stage: the detector's (``load`` ... ``postprocess``), ``write``,
            ``report`` (when made) and ``total``, the whole analysis (``result.timings_s["total"]`` is the
            detection only).
    """

    run: DetectionOutput
    files: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def result(self) -> ScanResult:
        return self.run.result


def _scaled(progress: ProgressFn | None, start: float, share: float) -> ProgressFn | None:
    """``progress`` for a part of the work that covers ``[start, start + share]`` of the whole."""
    if progress is None:
        return None
    return lambda stage, fraction: progress(stage, round(start + share * fraction, 9))


def _call(progress: ProgressFn | None, stage: str, fraction: float) -> None:
    """Report one of the analysis's own stages (``write``, ``report``, ``done``)."""
    if progress is not None:
        progress(stage, round(fraction, 9))


def _target(out_dir: Path, result: ScanResult, source: str | Path | CTVolume, series_subfolder: bool) -> Path:
    """``out_dir``, or its sub-folder named after the series (the source's stem when the scan has none)."""
    if not series_subfolder:
        return out_dir
    if isinstance(source, CTVolume):
        stem = Path(source.metadata.source_path).stem if source.metadata.source_path else "scan"
    else:
        stem = Path(source).stem
    return out_dir / (result.series_uid or stem)


def analyse_scan(
    detector: Detector,
    source: str | Path | CTVolume,
    out_dir: str | Path | None,
    *,
    series_uid: str | None = None,
    report: bool = False,
    explain: bool = False,
    study_kind: StudyKind | str = StudyKind.SCREENING,
    min_probability: float | None = None,
    series_subfolder: bool = False,
    progress: ProgressFn | None = None,
    risk: RiskOptions | None = None,
) -> AnalysisOutput:
    """Detect the nodules of one scan and write its results.

    Args:
        detector: a loaded detector (``Detector.load``), reused across scans.
        source: a DICOM folder, an image file (``.mhd``, ``.nii.gz``) or a loaded ``CTVolume``.
        out_dir: folder for ``result.json``, ``candidates.csv`` (every candidate), ``key_images/`` (the
            shown findings) and the report; None: detect only, write nothing.
        series_uid: the SeriesInstanceUID to read when a folder holds several.
        report: also write the clinician report (HTML, PDF, figures, DICOM SEG / SR / Encapsulated PDF).
        explain: add Grad-CAM maps to the report (implies ``report``).
        study_kind: screening (Lung-RADS) or incidental (Fleischner): the follow-up guidance the report gives.
        min_probability: findings shown from this probability, 0 to 1 (key images, report); default the
            detector's ``infer.report_threshold``.  ``result.json`` always holds every candidate.
        series_subfolder: write into ``out_dir/<SeriesInstanceUID>`` (several scans into one folder).
        progress: called as ``progress(stage, fraction)`` after each stage in ``STAGES`` order (``load``,
            ``preprocess``, ``network``, ``postprocess``, ``write``, ``report``, then ``done`` with 1.0);
            ``fraction`` is the share of the analysis done, 0 to 1, never decreasing.  Stages that do not
            run are not reported (no ``network`` for a scan without lung, no ``write`` without
            ``out_dir``, no ``report`` unless asked).  An exception it raises stops the analysis and
            propagates; see the module docstring for what that leaves in ``out_dir``.
        risk: what the scan cannot give the Brock malignancy-risk model (family history, spiculation) and
            overrides of the header's age and sex; every finding gets ``malignancy_risk``
            (``lungcad.infer.risk``).

    Raises:
        InputError: unusable input (from the detector), or a report asked for without ``out_dir``.
    """
    make_report = report or explain
    if make_report and out_dir is None:
        raise InputError("a report writes files, but no output folder was given", fix="pass out_dir")
    threshold = detector.cfg.infer.report_threshold if min_probability is None else min_probability
    weights = {
        "detect": DETECT_WEIGHT,
        "write": WRITE_WEIGHT if out_dir is not None else 0.0,
        "report": REPORT_WEIGHT if make_report else 0.0,
    }
    total = sum(weights.values())
    started = time.perf_counter()
    run = detector.run(source, series_uid, progress=_scaled(progress, 0.0, weights["detect"] / total))
    run = dataclasses.replace(
        run,
        result=attach_risk(
            run.result, run.volume, run.pre, risk, report_threshold=detector.cfg.infer.report_threshold
        ),
    )
    timings = {k: v for k, v in run.result.timings_s.items() if k != "total"}
    files: dict[str, str] = {}
    target = None
    done = weights["detect"]
    if out_dir is not None:
        target = _target(Path(out_dir), run.result, source, series_subfolder)
        t0 = time.perf_counter()
        files = write_outputs(run.result, run.volume, target, threshold)
        timings["write"] = time.perf_counter() - t0
        log_stage("write", timings["write"], "lungcad.report", files=len(files))
        done += weights["write"]
        _call(progress, "write", done / total)
    if make_report and target is not None:
        from lungcad.report.rerender import report_detection

        t0 = time.perf_counter()
        made = report_detection(
            run, detector, target, min_probability=threshold, study_kind=study_kind, explain=explain
        )
        timings["report"] = time.perf_counter() - t0
        log_stage("report", timings["report"], "lungcad.report", explain=explain)
        files.update(made.as_dict())
        _call(progress, "report", 1.0)
    timings["total"] = time.perf_counter() - started
    _call(progress, "done", 1.0)
    return AnalysisOutput(run, files, target, timings)
