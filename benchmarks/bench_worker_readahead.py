"""Worker read-ahead benchmark: scans per hour of the job path with the next scan read ahead, and without.

Each side (read-ahead off, then on) gets its own temporary data folder: the series (LIDC-IDRI-0001 by
default) stored once as blobs + rows, the shipped model loaded and warmed (``DetectorPool.warm_active``, as
``lungcad worker`` does), one warm-up analysis (not counted), then ``n`` analyses of that series queued on
the real SQLite Huey queue and delivered one after another in this process exactly as the consumer does
(``huey.dequeue`` + ``huey.execute`` -> ``run_analysis``).  After each job its result folder is removed so
that the result cache never answers the next one (the removal is timed on both sides alike).  The ratio
``<data>_per_scan_on_over_off`` is (wall time of the n jobs with read-ahead) / (without), both measured in
this run: lower is better, 1.0 means no gain.  What it can at most hide is the load stage of every scan but
the first (``load_s`` per scan, printed).

Usage::

    python benchmarks/bench_worker_readahead.py [--series DIR] [--n 10] [--quick] [--json PATH]

``--quick``: ``n = 3`` (default 10).  Without the LIDC data (and no ``--series``) it prints that it skipped
and writes a result without ratios.  Rows and blobs are written by the service test helpers
(``tests/service/helpers_store.py``: what an upload stores, without the HTTP layer).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import default_json_path, write_result

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the test helpers that store a series (tests/ is a package of the repo)
LIDC = REPO.parent / "shared" / "data" / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


def _side(series: Path, folder: Path, n: int, read_ahead: bool) -> dict[str, Any]:
    """``n`` analyses of ``series`` through the worker's job path; wall seconds and per-scan stages."""
    from tests.service.helpers_store import add_analysis, row, store_series

    from lungcad.service.context import open_context
    from lungcad.service.jobs.queue import enqueue_analysis, jobs_of
    from lungcad.service.settings import load_settings

    settings = load_settings(folder, environ={}, worker_read_ahead=read_ahead, job_timeout_s=3600)
    ctx = open_context(settings)
    try:
        study_id, series_uid = store_series(ctx, series)
        jobs = jobs_of(ctx.queue)
        jobs.detectors.warm_active()

        def deliver() -> dict[str, Any]:
            task = ctx.queue.dequeue()
            ctx.queue.execute(task)
            aid = task.args[0]
            r = row(ctx, aid)
            if r is None or r.result_dir is None:
                raise RuntimeError(
                    f"analysis did not finish: {r.status if r else 'gone'} {r.error if r else ''}"
                )
            doc = json.loads((ctx.storage.result_dir(r.result_dir) / "result.json").read_text())
            ctx.storage.delete_result(r.result_dir)  # the next analysis of the series is not a cache hit
            return {k: round(v, 3) for k, v in doc["timings_s"].items()}

        enqueue_analysis(ctx, add_analysis(ctx, study_id, series_uid))
        deliver()  # warm-up: first-call costs of preprocessing, postprocessing, writing
        for _ in range(n):
            enqueue_analysis(ctx, add_analysis(ctx, study_id, series_uid))
        t0 = time.perf_counter()
        stages = [deliver() for _ in range(n)]
        wall = time.perf_counter() - t0
        counts = dict(jobs.readahead.counts) if jobs.readahead is not None else {}
        if jobs.readahead is not None:
            jobs.readahead.close()
    finally:
        ctx.close()
    return {
        "wall_s": round(wall, 3),
        "per_scan_s": round(wall / n, 3),
        "scans_per_hour": round(3600 * n / wall, 1),
        "load_s_median": statistics.median(s.get("load", 0.0) for s in stages),
        "network_s_median": statistics.median(s.get("network", 0.0) for s in stages),
        "stages": stages,
        "read_ahead_counts": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=None, help="DICOM series folder (default LIDC-0001)")
    parser.add_argument("--n", type=int, default=None, help="analyses per side (default 10, quick 3)")
    parser.add_argument("--quick", action="store_true", help="3 analyses per side")
    parser.add_argument(
        "--json", type=Path, default=default_json_path("worker_readahead"), help="result JSON"
    )
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    n = args.n or (3 if args.quick else 10)
    series = args.series or LIDC
    if not series.is_dir():
        reason = f"series not found ({series}; pass --series DIR)"
        print(f"{reason}: skipping")
        write_result("worker_readahead", {}, {}, mode=mode, path=args.json, skipped=reason)
        return
    known = {LIDC.resolve(): "lidc0001", SLAB.resolve(): "slab0001"}
    key = known.get(series.resolve(), "series")
    print(f"series: {series} ({key}), {n} analyses per side", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-readahead-"))
    try:
        sides = {name: _side(series, tmp / name, n, name == "on") for name in ("off", "on")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, m in sides.items():
        print(
            f"  read-ahead {name:>3}: {m['wall_s']:.1f} s for {n} scans = {m['per_scan_s']:.2f} s/scan, "
            f"{m['scans_per_hour']:.0f} scans/hour (load {m['load_s_median']:.2f} s, "
            f"network {m['network_s_median']:.2f} s per scan; read-ahead {m['read_ahead_counts']})"
        )
    ratio = sides["on"]["wall_s"] / sides["off"]["wall_s"]
    print(f"  with / without read-ahead: {ratio:.3f} of the time")
    ratios = {f"{key}_per_scan_on_over_off": round(ratio, 4)}
    write_result(
        "worker_readahead", ratios, {"n": n, "series": str(series), **sides}, mode=mode, path=args.json
    )


if __name__ == "__main__":
    main()
