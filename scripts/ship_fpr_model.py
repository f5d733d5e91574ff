"""Ship a model whose FPR stage was trained by ``lungcad train-fpr``: card facts in, packaged file out.

    python scripts/ship_fpr_model.py --model runs/fpr/full.pt --ablation runs/fpr/abl_full.json \\
        --loo 1.3.6...603192=runs/fpr/abl_h_loo0001.json --loo 1.3.6...104919=runs/fpr/abl_h_loo0002.json

The first stage (detector weights, calibration, its own card) is the base model's, unchanged; this adds
``card["fp_reduction"]`` (training data, counts, validation AUCs, the combination rule, the ablation on the
synthetic test cohorts and the real scans, the leave-one-real-scan-out numbers), replaces the headline
test numbers with the shipped model's (the "min" column: what ``lungcad detect`` runs), and writes the
packaged model file and ``MODEL_CARD.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lungcad.fileio import atomic_write_json
from lungcad.model.bundle import load_bundle, save_bundle, shipped_model_path

SHIPPED = "min"  # the column of fpr_ablation.py that the shipped rule produces


def _scan(doc: dict, uid: str, column: str) -> dict | None:
    for cohort in doc["cohorts"].values():
        for row in cohort["per_scan"]:
            if row["scan_id"] == uid:
                return row[column]
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ablation", required=True)
    ap.add_argument(
        "--loo", action="append", default=[], help="UID=ablation.json of a model trained without UID"
    )
    ap.add_argument("--out", default=str(shipped_model_path()))
    args = ap.parse_args()
    bundle = load_bundle(args.model)
    assert bundle.fpr is not None, "the model has no FPR stage"
    ablation = json.loads(Path(args.ablation).read_text())
    cohorts = ablation["cohorts"]
    loo = {}
    for item in args.loo:
        uid, path = item.split("=", 1)
        doc = json.loads(Path(path).read_text())
        loo[uid] = {
            "model_trained_without_it": doc["model_version"],
            **{col: _scan(doc, uid, col) for col in ("off", "stacked", "min")},
        }
    stage_card = dict(bundle.fpr.card)
    card = dict(bundle.card)
    card["first_stage"] = "the 0.2.0 detector weights and calibration, unchanged"
    card["fp_reduction"] = {
        "network": "model.fpr.FprNet: 2 x 32^3 crops (1 mm and 2 mm) + detector logit and size",
        "combine_rule": bundle.fpr.combine_rule,
        "training_data": stage_card.get("data"),
        "samples": stage_card.get("samples"),
        "scans": stage_card.get("scans"),
        "val_auc": stage_card.get("val_auc"),
        "val_auc_first_stage": stage_card.get("val_auc_first_stage"),
        "calibration": stage_card.get("calibration"),
        "recipe": stage_card.get("recipe"),
        "training_wall_time_s": stage_card.get("seconds"),
        "ablation": {
            name: {col: doc[col] for col in ("off", "stacked", "min")} | {"scans": doc["scans"]}
            for name, doc in cohorts.items()
        },
        "leave_one_out": loo,
    }
    for name, doc in cohorts.items():
        if name.endswith("test"):
            card["test_froc"] = {**doc[SHIPPED], "cohort": name}
        elif not name.endswith("real"):
            card.setdefault("other_test_cohorts", {})[name] = {"froc": doc[SHIPPED]}
    card["real_scans"] = {
        row["scan_id"]: row[SHIPPED]
        for name, doc in cohorts.items()
        for row in doc["per_scan"]
        if name.endswith("real")
    }
    card.setdefault("lineage", {})["0.3.0"] = {
        "first_stage": "0.2.0",
        "fp_reduction": "lungcad train-fpr " + " ".join(f"--data {d}" for d in stage_card.get("data", [])),
    }
    bundle.card = card
    bundle.model_version = "0.3.0"
    out = save_bundle(bundle, args.out)
    atomic_write_json(Path(out).parent / "MODEL_CARD.json", card, default=str)
    print(f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB) and MODEL_CARD.json")


if __name__ == "__main__":
    main()
