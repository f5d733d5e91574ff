"""Mine the first stage's candidates of cohorts into the FPR cache (the slow part of ``lungcad train-fpr``).

    python scripts/fpr_mine.py --cache cache/fpr cohorts/train cohorts/real ...

Running it ahead lets later ``lungcad train-fpr`` runs (the shipped stage and leave-one-out ones) reuse
one pass; ``train-fpr`` mines whatever is missing itself.
"""

from __future__ import annotations

import argparse
import time

from lungcad.data.cohort import read_cohorts
from lungcad.infer.detector import Detector
from lungcad.model.bundle import load_bundle
from lungcad.train.fpr_data import mine_cohort
from lungcad.train.fpr_stage import first_stage_detector


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="+")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    detector: Detector = first_stage_detector(load_bundle(args.model))
    records = read_cohorts(args.data)
    t0 = time.perf_counter()
    samples = mine_cohort(
        detector,
        records,
        args.cache,
        progress=lambda i, n, uid: print(f"{i}/{n} {time.perf_counter() - t0:.0f} s", flush=True),
    )
    n_pos = int((samples.labels > 0.5).sum())
    print(f"{len(samples)} samples, {n_pos} positive, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
