"""Turn a finished training run into the shipped model: export + calibrate, evaluate, write the model card.

    python scripts/ship_model.py --run runs/shipped_v2 --test cohorts/test --also-test cohorts/eval11

1. ``lungcad export-model`` from the run's best checkpoint, calibrated on the run's validation split;
2. ``evaluate_cohort`` (what ``lungcad evaluate`` runs) on the held-out synthetic test cohort (another seed);
3. detection on the real LIDC-IDRI-0001 series when ``../shared/data`` is present;
4. the facts (data, config hash, training time, validation and test CPM, calibration, real-scan result)
   embedded in the model file and written to ``models/MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIDC0001 = REPO.parent / "shared" / "data" / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
LUNA_NODULE = ((56.21, 86.34, -115.87), 23.35)


def _rel(path: str) -> str:
    """A path relative to the repository when it lies inside it (the card must not name this machine)."""
    p = Path(path)
    return str(p.relative_to(REPO)) if p.is_absolute() and p.is_relative_to(REPO) else str(p)


def main() -> int:
    import numpy as np

    from lungcad.cli import main as cli
    from lungcad.config import load_config
    from lungcad.evaluate.cohort import evaluate_cohort
    from lungcad.fileio import atomic_write_json
    from lungcad.infer.detector import Detector
    from lungcad.model.bundle import load_bundle, save_bundle
    from lungcad.train.state import TrainingState

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO / "models" / "lungcad-default.pt")
    parser.add_argument("--version", default="0.2.0")
    parser.add_argument(
        "--also-test", type=Path, action="append", default=[], help="more held-out cohorts to report"
    )
    args = parser.parse_args()
    best = args.run / "checkpoints" / "best.ckpt"
    ckpt = best if best.exists() else args.run / "last.ckpt"
    if (
        cli(
            [
                "export-model",
                "--checkpoint",
                str(ckpt),
                "--out",
                str(args.out),
                "--model-id",
                "lungcad-default",
                "--model-version",
                args.version,
                "--calibrate-on",
                str(args.run),
            ]
        )
        != 0
    ):
        return 2
    # As ``lungcad evaluate`` runs it: the default configuration's inference settings over the model's own.
    detector = Detector.load(args.out, config=load_config())
    test = evaluate_cohort(args.test, args.run / "eval_test", detector, bootstrap=1000, show_progress=True)
    state = TrainingState.read(args.run)
    run_json = json.loads((args.run / "run.json").read_text())
    bundle = load_bundle(args.out)
    card = dict(bundle.card)
    card.update(
        {
            "training_data": "lungcad synth cohort(s) "
            + ", ".join(_rel(d) for d in run_json.get("data_dirs") or [run_json["data_dir"]])
            + " (patient split in splits.json)",
            "initialised_from": _rel(run_json["init_from"]) if run_json.get("init_from") else None,
            "config_hash": bundle.config_hash,
            "checkpoint": str(ckpt),
            "training_steps": state.step,
            "training_epochs": state.epoch,
            "training_wall_time_s": round(state.updated_at - state.started_at),
            "validation_cpm_best": state.best_cpm,
            "test_cohort": str(args.test),
            "test_froc": test.froc.to_dict(),
        }
    )
    for extra in args.also_test:
        more = evaluate_cohort(extra, args.run / f"eval_{extra.name}", detector, show_progress=True)
        card.setdefault("other_test_cohorts", {})[str(extra)] = {
            "froc": more.froc.to_dict(),
            "n_scans": more.summary.n_scans,
            "n_nodules": more.summary.n_nodules,
            "sensitivity_at_threshold": more.summary.sensitivity,
            "fps_per_scan_at_threshold": more.summary.fps_per_scan,
        }
    if LIDC0001.is_dir():
        t0 = time.time()
        result = Detector(bundle).detect(LIDC0001)
        centre, diameter = LUNA_NODULE
        hits = [
            f for f in result.findings if np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) < diameter / 2
        ]
        top = max(hits, key=lambda f: f.probability, default=None)
        shown = [f for f in result.findings if f.probability >= bundle.config.infer.report_threshold]
        card["lidc_idri_0001"] = {
            "luna16_nodule_found": top is not None,
            "nodule_probability": None if top is None else round(top.probability, 3),
            "nodule_diameter_mm": None if top is None else top.diameter_mm,
            "nodule_diameter_segmentation_mm": None
            if top is None or top.diameters is None
            else top.diameters.segmentation_mm,
            "luna16_diameter_mm": diameter,
            "false_positives_at_report_threshold": int(
                sum(np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) >= diameter / 2 for f in shown)
            ),
            "candidates": len(result.findings),
            "seconds": round(time.time() - t0, 1),
        }
    bundle.card = card
    save_bundle(bundle, args.out)
    atomic_write_json(args.out.parent / "MODEL_CARD.json", card, default=str)
    print(json.dumps(card, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
