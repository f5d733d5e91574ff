"""Write the real scans of ../shared/data as a LUNA16-layout cohort (what ``lungcad train-fpr`` and
``scripts/fpr_ablation.py`` read as ``cohorts/real``).

    python scripts/make_real_cohort.py [--data ../shared/data] [--out cohorts/real]

``subset0/<seriesuid>.mhd`` for LIDC-IDRI-0001 and -0002 (HU as loaded by ``lungcad.io.load_ct``) and the
official LUNA16 ``annotations.csv`` / ``annotations_excluded.csv`` rows of those series.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from lungcad.io import load_ct
from lungcad.io.image import save_volume

SERIES = ("LIDC-IDRI-0001", "LIDC-IDRI-0002")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("cohorts/real"))
    args = ap.parse_args()
    uids = set()
    for name in SERIES:
        folder = next(p.parent for p in sorted((args.data / "lidc" / name).rglob("*.dcm")))
        volume = load_ct(folder)
        uid = volume.metadata.series_uid
        uids.add(uid)
        save_volume(volume, args.out / "subset0" / f"{uid}.mhd")
        print(name, uid, volume.shape)
    for table in ("annotations.csv", "annotations_excluded.csv"):
        with (args.data / "luna16" / table).open() as fh:
            rows = list(csv.reader(fh))
        with (args.out / table).open("w", newline="") as fh:
            csv.writer(fh).writerows([rows[0]] + [r for r in rows[1:] if r and r[0] in uids])


if __name__ == "__main__":
    main()
