"""`make demo`: run lungcad's main job on embedded defaults and print where the outputs are.

Today the main job is intake: load the bundled real LIDC-IDRI-0001 slab (or SCAN=path), run QA, crop to
the lungs, resample to 1 mm, normalise, and write the preprocessed volume, lung mask, JSON sidecar and a
preview PNG.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLED_SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


def main() -> int:
    from lungcad.cli import main as cli

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=None, help="DICOM folder, .mhd or .nii.gz")
    parser.add_argument("--out", type=Path, default=REPO / "demo_out")
    args = parser.parse_args()
    scan = args.scan or BUNDLED_SLAB
    print(f"lungcad demo: ingesting {scan}")
    code = cli(["ingest", str(scan), "--out", str(args.out / "intake")])
    if code != 0:
        return code
    print(
        f"\nDemo outputs are in {args.out / 'intake'}: preprocessed.nii.gz, lung_mask.nii.gz, "
        "preprocessed.json (metadata + QA), preview.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
