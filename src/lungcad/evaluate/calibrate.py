"""Fit the detection and triage calibrators of a model on a validation cohort and report ECE."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from lungcad.data.cohort import load_split, read_cohort, read_cohorts, run_data_dirs
from lungcad.data.records import ScanRecord
from lungcad.evaluate.metrics import FindingStatus, match_findings
from lungcad.evaluate.runner import ScanEvaluation, run_detector
from lungcad.infer.detector import Detector
from lungcad.model.bundle import ModelBundle
from lungcad.model.calibration import Calibrator, expected_calibration_error


def calibration_samples(evals: list[ScanEvaluation]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Raw detection probabilities labelled by the LUNA16 hit rule (``match_findings``: hits on a nodule
    -- best or duplicate -- are 1, false positives 0, hits on excluded findings left out), and raw triage
    probabilities of each nodule's matched finding with the nodule's ``actionable`` label."""
    det_p, det_y, tri_p, tri_y = [], [], [], []
    for ev in evals:
        m = match_findings(
            ev.record.nodules, ev.result.findings, ev.record.excluded, scan_id=ev.record.scan_id
        )
        for f, status in zip(m.findings, m.status, strict=True):
            if status is not FindingStatus.IGNORED:
                det_p.append(f.raw_probability)
                det_y.append(int(status is not FindingStatus.FALSE_POSITIVE))
        for gt, j in zip(m.gt, m.gt_match, strict=True):
            if j is not None:
                tri_p.append(m.findings[j].raw_triage_probability)
                tri_y.append(int(gt.actionable))
    return {
        "detection": (np.asarray(det_p), np.asarray(det_y)),
        "triage": (np.asarray(tri_p), np.asarray(tri_y)),
    }


def calibration_records(source: str | Path) -> list[ScanRecord]:
    """A cohort folder's scans (evaluation view), or a training run folder's *validation* split."""
    src = Path(source)
    if (src / "splits.json").exists() and (src / "run.json").exists():
        _, val = load_split(src / "splits.json", read_cohorts(run_data_dirs(src), evaluation=True))
        return val
    return read_cohort(src, evaluation=True)


def calibrate_bundle(
    bundle: ModelBundle, source: str | Path, method: Literal["temperature", "isotonic"] = "temperature"
) -> dict[str, Any]:
    """Fit both calibrators in place on ``source`` (a cohort, or a run folder's validation split); return
    ECE before and after for each."""
    bundle.detection_calibrator = Calibrator()
    bundle.triage_calibrator = Calibrator()
    records = calibration_records(source)
    evals = run_detector(Detector(bundle), records)
    report: dict[str, Any] = {"source": str(source), "n_scans": len(records), "method": method}
    for name, (p, y) in calibration_samples(evals).items():
        if len(p) < 2 or len(np.unique(y)) < 2:
            report[name] = {"n": int(len(p)), "note": "not fitted: needs both classes"}
            continue
        cal = Calibrator.fit(p, y, method)
        setattr(bundle, f"{name}_calibrator", cal)
        report[name] = {
            "n": int(len(p)),
            "ece_before": round(expected_calibration_error(p, y), 4),
            "ece_after": round(expected_calibration_error(cal(p), y), 4),
            **({"temperature": round(cal.temperature, 4)} if method == "temperature" else {}),
        }
    return report
