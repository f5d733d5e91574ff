"""``evaluate_cohort``: a model on a cohort -> FROC / CPM, per-nodule metrics and the report files.

This is the whole of ``lungcad evaluate`` (the CLI parses, calls it and prints) and what
``scripts/ship_model.py`` uses for the model card.  Steps: read the cohort (evaluation view), detect on every
scan (a scan that cannot be analysed is recorded with its reason, or stops the run with ``strict``), the
LUNA16 FROC of the evaluated scans, the per-nodule summary at the operating threshold, and
``summary.json`` plus its figures in ``out``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lungcad.data.cohort import read_cohort
from lungcad.errors import InputError
from lungcad.evaluate.froc import FrocResult, ScanDetections, froc_of_detections
from lungcad.evaluate.metrics import BoxMask, ScanMatch, detected_pairs, match_findings
from lungcad.evaluate.runner import FailedScan, ScanEvaluation, run_cohort
from lungcad.evaluate.summary import EvaluationSummary, summarise
from lungcad.evaluate.summary_report import write_report
from lungcad.fileio import check_output_dir
from lungcad.infer.detector import Detector


@dataclass
class EvaluationReport:
    """What ``evaluate_cohort`` measured and wrote.

    Attributes:
        summary: FROC / CPM and the per-nodule metrics of the evaluated scans.
        scans: each evaluated scan's record, result and ground-truth masks, in cohort order.
        failed: the scans that could not be evaluated, with their reasons (not in ``summary``).
        files: the written report files by name (``"summary"`` is ``summary.json``).
        cohort: the cohort folder.
        model: the model's ``id``, ``version`` and ``config_hash``.
    """

    summary: EvaluationSummary
    scans: list[ScanEvaluation]
    failed: list[FailedScan]
    files: dict[str, Path]
    cohort: Path
    model: dict[str, str]

    @property
    def froc(self) -> FrocResult:
        assert self.summary.froc is not None  # evaluate_cohort refuses a cohort without nodules
        return self.summary.froc

    @property
    def mean_seconds_per_scan(self) -> float:
        total = sum(ev.result.timings_s.get("total", 0.0) for ev in self.scans)
        return round(total / max(1, len(self.scans)), 2)

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` document: the summary, then model, cohort, scan counts and failed scans."""
        return self.summary.to_dict() | {
            "model": dict(self.model),
            "cohort": str(self.cohort),
            "n_scans": len(self.scans),
            "n_failed": len(self.failed),
            "failed_scans": [f.to_dict() for f in self.failed],
            "mean_seconds_per_scan": self.mean_seconds_per_scan,
        }


def _segmentations(
    scans: Sequence[ScanEvaluation], matches: Sequence[ScanMatch], threshold: float
) -> list[tuple[BoxMask, BoxMask]]:
    """(predicted, truth) box masks of the nodules detected at ``threshold``, for Dice."""
    out = []
    for pair in detected_pairs(matches, threshold):
        f = pair.finding
        masks = scans[pair.scan_index].gt_masks
        truth = masks[pair.gt_index] if masks else None
        if truth is not None and f.mask is not None and f.mask_ref is not None:
            out.append((BoxMask(f.mask_ref.offset_zyx, f.mask), truth))
    return out


def _no_froc_error(data: Path, n_evaluated: int, failed: Sequence[FailedScan]) -> InputError:
    if n_evaluated == 0 and failed:
        return InputError(
            f"none of the {len(failed)} scans could be evaluated; the first: {failed[0].scan_id}: "
            f"{failed[0].reason}",
            path=data,
            fix="check the cohort's image files (lungcad info IMAGE says what is wrong with one)",
        )
    return InputError(
        "no nodule in the evaluated scans: FROC and CPM are undefined",
        path=data,
        fix="evaluate on a cohort whose annotations hold nodules",
    )


def evaluate_cohort(
    data: str | Path,
    out: str | Path,
    detector: Detector,
    *,
    threshold: float = 0.5,
    bootstrap: int = 1000,
    strict: bool = False,
    show_progress: bool = False,
) -> EvaluationReport:
    """Evaluate ``detector`` on the cohort in ``data`` and write the report into ``out``.

    Args:
        data: cohort folder (lungcad synth, LUNA16 or LIDC layout).
        out: report folder (created; an existing file or an unwritable place is refused before any work).
        detector: the loaded model; its configuration's ``evaluate`` section sets the FROC rules.
        threshold: operating point on the detection probability, in [0, 1].
        bootstrap: FROC bootstrap samples over scans (0: none).
        strict: stop at the first scan that cannot be analysed (its error propagates) instead of recording
            it in ``EvaluationReport.failed`` and going on.
        show_progress: a progress bar on the terminal.

    Returns:
        The report; ``summary.json`` holds ``EvaluationReport.to_dict()``.

    Raises:
        InputError: ``out`` cannot be written, the cohort cannot be read, or no evaluated scan holds a
            nodule (FROC undefined), e.g. because every scan failed.
        LungcadError: with ``strict``, the first scan's error.
    """
    data, out = Path(data), check_output_dir(out)  # written (and created) at the end
    records = read_cohort(data, evaluation=True)
    run = run_cohort(detector, records, strict=strict, show_progress=show_progress, with_masks=True)
    unknown_mm = detector.cfg.evaluate.excluded_unknown_diameter_mm  # the same rule for FROC and metrics
    froc = froc_of_detections(
        [
            ScanDetections(ev.record.scan_id, ev.record.nodules, ev.record.excluded, ev.result.findings)
            for ev in run.scans
        ],
        max_candidates_per_scan=detector.cfg.evaluate.max_candidates_per_scan,
        excluded_unknown_diameter_mm=unknown_mm,
        bootstrap_samples=bootstrap,
    )
    if froc is None:
        raise _no_froc_error(data, len(run.scans), run.failed)
    matches = [
        match_findings(
            ev.record.nodules,
            ev.result.findings,
            ev.record.excluded,
            scan_id=ev.record.scan_id,
            excluded_unknown_diameter_mm=unknown_mm,
        )
        for ev in run.scans
    ]
    summary = summarise(
        matches, threshold=threshold, froc=froc, segmentations=_segmentations(run.scans, matches, threshold)
    )
    b = detector.bundle
    report = EvaluationReport(
        summary=summary,
        scans=run.scans,
        failed=run.failed,
        files={},
        cohort=data,
        model={"id": b.model_id, "version": b.model_version, "config_hash": b.config_hash},
    )
    report.files = write_report(summary, out, document=report.to_dict())
    return report
