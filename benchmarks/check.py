"""``make bench-check``: run the quick benchmarks, compare their ours / reference ratios with the baseline.

Usage::

    python benchmarks/check.py                    # run every benchmark --quick, then compare
    python benchmarks/check.py --no-run           # compare the result JSONs already in benchmarks/results
    python benchmarks/check.py --only intake      # run and compare some benchmarks only
    python benchmarks/check.py --update-baseline  # run, then record the ratios as the new baseline

Exit code 1 when a ratio grew by more than the tolerance (20 %) over its baseline, or a benchmark
script failed; ratios without a baseline or without data (e.g. no ``../shared/data``) are listed, not failed.
Quick mode keeps each benchmark's sizes (the real LIDC-IDRI-0001 series, 512 x 512 x 600 thin slices,
64^3 training patches, ...) and cuts repeats and variants, so its ratios are comparable to full runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchlib import BASELINE, BENCH_DIR, RESULTS_DIR, compare, default_json_path, format_rows, load_results

BENCHMARKS = ("intake", "synth", "model", "train", "detect", "report", "service", "worker_readahead")


def run_quick(names: list[str]) -> list[str]:
    """Run ``bench_<name>.py --quick --json results/<name>.json`` for each; the names that failed."""
    failed = []
    for name in names:
        script = BENCH_DIR / f"bench_{name}.py"
        print(f"\n=== {script.name} --quick", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, str(script), "--quick", "--json", str(default_json_path(name))]
        proc = subprocess.run(cmd)
        print(f"=== {script.name}: exit {proc.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
        if proc.returncode != 0:
            failed.append(name)
    return failed


def update_baseline(results: dict[str, dict], path: Path = BASELINE) -> None:
    """Record every measured ratio as the baseline value (keeping the other entries)."""
    doc = json.loads(path.read_text()) if path.exists() else {"tolerance": 0.2, "ratios": {}}
    for name, result in results.items():
        entry = doc.setdefault("ratios", {}).setdefault(name, {})
        for ratio, value in result.get("ratios", {}).items():
            machine = result.get("machine", {})
            entry[ratio] = {
                "value": round(float(value), 4),
                "source": f"{result.get('mode')} run {result.get('created')} on {machine.get('cpu_count')} "
                f"cores, load {machine.get('load_average_1min')}",
            }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"baseline updated: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="only compare existing result JSONs")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--update-baseline", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args()
    failed = [] if args.no_run else run_quick(args.only)
    results = {k: v for k, v in load_results(args.results).items() if k in args.only}
    if args.update_baseline:
        update_baseline(results, args.baseline)
    baseline = json.loads(args.baseline.read_text())
    baseline["ratios"] = {k: v for k, v in baseline.get("ratios", {}).items() if k in args.only}
    rows = compare(results, baseline)
    print("\n" + format_rows(rows))
    regressions = [r for r in rows if r.verdict == "regression"]
    for name in failed:
        print(f"FAILED: bench_{name}.py exited non-zero")
    if regressions:
        tol = float(baseline.get("tolerance", 0.2))
        print(f"FAILED: {len(regressions)} ratio(s) more than {tol:.0%} above their baseline")
    else:
        print("bench-check: no regression")
    return 1 if regressions or failed else 0


if __name__ == "__main__":
    sys.exit(main())
