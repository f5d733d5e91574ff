"""Real vs synthetic lung-parenchyma HU spread (interquartile range), the number issue 10 calibrates against.

Measured the same way on every scan (``lungcad.synth.parenchyma.parenchyma_iqr``): inside
``segment_lungs``' mask, voxels below -500 HU (vessels excluded), 3 mm from the mask's edge.

* real: the full LIDC-IDRI-0001 and LIDC-IDRI-0002 series in ``../shared/data`` (or ``$LUNGCAD_REAL_DATA``);
* synthetic: ``generate_scan`` scans of the cohort given by ``--config`` (default: the defaults, i.e. the
  benchmark cohorts' settings; ``configs/synth_realistic.yaml`` for the realistic ones).

Usage: ``.venv/bin/python scripts/measure_parenchyma.py [--config configs/synth_realistic.yaml]
[--n 2] [--seed 7] [--shape-xy 512] [--no-real]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from lungcad.config import load_config
from lungcad.io.load import load_ct
from lungcad.preprocess.lung_mask import segment_lungs
from lungcad.synth import generate_scan
from lungcad.synth.parenchyma import parenchyma_iqr

REPO = Path(__file__).resolve().parents[1]
REAL = ("lidc/LIDC-IDRI-0001/01-01-2000-30178/3000566-03192", "lidc/LIDC-IDRI-0002")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    default_data = os.environ.get("LUNGCAD_REAL_DATA", str(REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--config", type=Path, default=None, help="lungcad YAML whose synth section to use")
    parser.add_argument("--n", type=int, default=2, help="synthetic scans")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shape-xy", type=int, default=512)
    parser.add_argument("--no-real", action="store_true", help="skip the real scans")
    args = parser.parse_args()
    out: dict[str, dict] = {}
    if not args.no_real:
        for rel in REAL:
            vol = load_ct(args.data / rel)
            out[f"real {Path(rel).parts[1]}"] = parenchyma_iqr(vol, segment_lungs(vol).full_mask())
    cfg = load_config(args.config).synth if args.config else load_config().synth
    cfg = cfg.model_copy(update={"seed": args.seed, "shape_xy": args.shape_xy})
    for i in range(args.n):
        scan = generate_scan(cfg, i)
        stats = parenchyma_iqr(scan.volume, segment_lungs(scan.volume).full_mask())
        stats["noise_std_hu"] = scan.acquisition.noise_std_hu
        out[f"synthetic seed {args.seed} scan {i}"] = stats
    for name, s in out.items():
        print(f"{name:<34} IQR {s['iqr']:6.1f} HU  median {s['median']:7.1f}  [{s['q1']:.0f}, {s['q3']:.0f}]")
    real = [s["iqr"] for k, s in out.items() if k.startswith("real")]
    syn = [s["iqr"] for k, s in out.items() if k.startswith("synthetic")]
    if real:
        print(f"real mean IQR {np.mean(real):.1f} HU")
    if syn:
        print(f"synthetic mean IQR {np.mean(syn):.1f} HU")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
