"""The FPR ablation: one detection pass per cohort, scored with the second stage on and off.

    python scripts/fpr_ablation.py --model M.pt --out eval_out/ablation.json cohorts/test cohorts/eval11 ...

The detector runs with the stage's rule set to "stacked": ``Finding.probability`` is then the stage's output
and ``Finding.detector_probability`` the first stage's, over the *same* candidates, so one pass gives every
column exactly: "off" (the detector alone, = ``lungcad evaluate`` with ``LUNGCAD_INFER__FP_REDUCTION=false``),
"stacked" (the stage's output) and "min" (the lower of the two: the shipped cascade rule).  Cohorts are
read in the evaluation view (LUNA16: nodules accepted by >= 3 readers; the rest excluded).  Per scan it
also lists the false positives at the report threshold and the matched nodules' probabilities and
diameters, for the real scans.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lungcad.data.cohort import read_cohort
from lungcad.evaluate.froc import ScanDetections, froc_of_detections
from lungcad.evaluate.matching import FindingStatus, excluded_arrays, luna16_match
from lungcad.evaluate.runner import run_cohort
from lungcad.fileio import atomic_write_json
from lungcad.infer.detector import Detector
from lungcad.model.bundle import load_bundle

SCORES = {
    "off": lambda f: f.detector_probability if f.detector_probability is not None else f.probability,
    "stacked": lambda f: f.probability,
    "min": lambda f: (
        min(f.probability, f.detector_probability) if f.detector_probability is not None else f.probability
    ),
}


def _scan_row(rec, findings, threshold: float) -> dict:  # noqa: ANN001 - script
    xyz = np.asarray([f.center_xyz_mm for f in findings]).reshape(-1, 3)
    row: dict = {"scan_id": rec.scan_id, "nodules": len(rec.nodules)}
    for name, score in SCORES.items():
        p = np.asarray([score(f) for f in findings], dtype=float)
        m = luna16_match(
            np.asarray([n.center_xyz_mm for n in rec.nodules]).reshape(-1, 3),
            np.asarray([n.diameter_mm for n in rec.nodules]),
            xyz,
            p,
            *excluded_arrays(rec.excluded),
        )
        fp = [i for i, s in enumerate(m.status) if s is FindingStatus.FALSE_POSITIVE and p[i] >= threshold]
        # strict: every finding at the threshold that hits no nodule, excluded findings included (what a
        # reader counts as marks that are not LUNA16 nodules)
        strict = [
            i for i, s in enumerate(m.status) if s is not FindingStatus.TRUE_POSITIVE and p[i] >= threshold
        ]
        strict = [i for i in strict if m.status[i] is not FindingStatus.DUPLICATE]
        row[name] = {
            "fp_at_threshold": len(fp),
            "marks_not_nodules_at_threshold": len(strict),
            "fp_probabilities": sorted((round(float(p[i]), 3) for i in fp), reverse=True),
            "nodules": [
                None
                if b < 0
                else {"probability": round(float(p[b]), 3), "diameter_mm": round(findings[b].diameter_mm, 2)}
                for b in m.best
            ],
            "truth_diameter_mm": [round(n.diameter_mm, 2) for n in rec.nodules],
        }
    return row


def ablate(model: str, cohorts: list[str], threshold: float) -> dict:
    bundle = load_bundle(model)
    if bundle.fpr is not None:
        bundle.fpr.combine_rule = "stacked"
    detector = Detector(bundle)
    out: dict = {"model": model, "model_version": bundle.model_version, "cohorts": {}}
    for cohort in cohorts:
        t0 = time.perf_counter()
        records = read_cohort(cohort, evaluation=True)
        run = run_cohort(detector, records, show_progress=False)
        doc: dict = {"scans": len(run.scans), "failed": [f.scan_id for f in run.failed]}
        rows = [_scan_row(ev.record, ev.result.findings, threshold) for ev in run.scans]
        for name, score in SCORES.items():
            scans = [
                ScanDetections(
                    ev.record.scan_id,
                    ev.record.nodules,
                    ev.record.excluded,
                    [replace(f, probability=score(f)) for f in ev.result.findings],
                )
                for ev in run.scans
            ]
            froc = froc_of_detections(scans, bootstrap_samples=1000)
            doc[name] = {
                "cpm": None if froc is None else round(froc.cpm, 4),
                "cpm_ci": None
                if froc is None or froc.bootstrap is None
                else [round(froc.bootstrap.cpm_low, 4), round(froc.bootstrap.cpm_high, 4)],
                "sensitivities": None if froc is None else [round(s, 4) for s in froc.sensitivities],
                "fp_per_scan_at_threshold": float(np.mean([r[name]["fp_at_threshold"] for r in rows])),
            }
        doc["per_scan"] = rows
        doc["seconds"] = round(time.perf_counter() - t0, 1)
        out["cohorts"][cohort] = doc
        print(cohort, {k: doc[k] for k in SCORES}, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cohorts", nargs="+")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()
    atomic_write_json(Path(args.out), ablate(args.model, args.cohorts, args.threshold))


if __name__ == "__main__":
    main()
