"""Fit the detection and triage calibrators of a model on a validation cohort and report ECE."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from lungcad.data.cohort import read_cohort
from lungcad.evaluate.runner import ScanEvaluation, finding_labels, run_detector
from lungcad.infer.calibration import Calibrator, expected_calibration_error
from lungcad.infer.detector import Detector
from lungcad.model.bundle import ModelBundle


def calibration_samples(evals: list[ScanEvaluation]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Raw detection probabilities with hit labels, and raw triage probabilities of true positives with
    the matched nodule's ``actionable`` label."""
    det_p, det_y, tri_p, tri_y = [], [], [], []
    for ev in evals:
        labels = finding_labels(ev)
        for f, lab in zip(ev.result.findings, labels, strict=True):
            if lab < 0:
                continue
            det_p.append(f.extra["raw_probability"])
            det_y.append(lab)
            if lab == 1:
                p = np.asarray(f.center_xyz_mm)
                gt = min(
                    ev.record.nodules, key=lambda n: float(np.linalg.norm(p - np.asarray(n.center_xyz_mm)))
                )
                tri_p.append(f.extra["raw_triage_probability"])
                tri_y.append(int(gt.actionable))
    return {
        "detection": (np.asarray(det_p), np.asarray(det_y)),
        "triage": (np.asarray(tri_p), np.asarray(tri_y)),
    }


def calibrate_bundle(
    bundle: ModelBundle, cohort: str | Path, method: Literal["temperature", "isotonic"] = "temperature"
) -> dict[str, Any]:
    """Fit both calibrators in place on ``cohort``; return ECE before and after for each."""
    bundle.detection_calibrator = Calibrator()
    bundle.triage_calibrator = Calibrator()
    evals = run_detector(Detector(bundle), read_cohort(cohort))
    report: dict[str, Any] = {"cohort": str(cohort), "method": method}
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
