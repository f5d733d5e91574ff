"""`make demo`: lungcad's main job on embedded defaults, then where the outputs are.

1. Intake of a real CT (the bundled LIDC-IDRI-0001 slab, or SCAN=path): QA, lung crop, 1 mm, preview.
2. A small synthetic cohort with exact ground truth (3 scans, 256 x 256, seed 2026).
3. Detection with the shipped model on the real scan (the full LIDC-IDRI-0001 series when
   ../shared/data is present, else the bundled slab), with the clinician report (HTML + PDF) and DICOM
   SEG / SR / Encapsulated PDF, and on the synthetic cohort.
4. Evaluation of the synthetic cohort: FROC / CPM and per-nodule metrics, JSON + PNG report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLED_SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
FULL_LIDC = REPO.parent / "shared" / "data" / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def main() -> int:
    from lungcad.cli import main as cli
    from lungcad.model.bundle import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=None, help="DICOM folder, .mhd or .nii.gz")
    parser.add_argument("--out", type=Path, default=REPO / "demo_out")
    args = parser.parse_args()
    t0 = time.time()
    out = args.out
    scan = args.scan or BUNDLED_SLAB

    step(f"1/4 intake of {scan}")
    if cli(["ingest", str(scan), "--out", str(out / "intake")]) != 0:
        return 2

    model = default_model_path()
    if not model.is_file():
        print(f"\nNo shipped model at {model}: detection steps skipped (train one with `lungcad train`).")
        return 0

    step("2/4 synthetic cohort (3 scans with exact ground truth)")
    cohort = out / "cohort"
    if not (cohort / "manifest.json").exists():
        code = cli(
            [
                "synth",
                "--out",
                str(cohort),
                "--n",
                "3",
                "--seed",
                "2026",
                "--shape-xy",
                "256",
                "--format",
                "both",
                "--workers",
                "2",
            ]
        )
        if code != 0:
            return code

    real = args.scan or (FULL_LIDC if FULL_LIDC.is_dir() else BUNDLED_SLAB)
    step(f"3/4 detection on the real scan {real}")
    if cli(["detect", str(real), "--out", str(out / "detect_real"), "--report"]) != 0:
        return 2
    scans = sorted(str(p) for p in (cohort / "scans").glob("*/*.mhd"))
    if cli(["detect", *scans, "--out", str(out / "detect_synthetic")]) != 0:
        return 2

    step("4/4 evaluation on the synthetic cohort")
    if cli(["evaluate", "--data", str(cohort), "--out", str(out / "evaluation"), "--bootstrap", "200"]) != 0:
        return 2

    print(f"\nDemo finished in {time.time() - t0:.0f} s. Outputs in {out}:")
    print("  intake/            preprocessed volume, lung mask, QA sidecar, preview.png")
    print("  cohort/            synthetic DICOM + MetaImage, LUNA16 CSVs, LIDC XML, masks, manifest")
    print(f"  detect_real/       result.json, candidates.csv, key_images/ for {real.name}")
    print("                     report/report.pdf + .html, nodules.nii.gz, dicom/ (SEG, SR, PDF)")
    print("  detect_synthetic/  one folder per synthetic scan")
    print("  evaluation/        summary.json, froc.png, reliability and size-band plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
