"""Benchmark ``lungcad.synth.generate_scan``: time and peak memory per 512 x 512 x 300 scan.

Target (issue 3): under 15 s and 3 GB per scan on the 2-core development machine.

Every measurement runs in a fresh child process, so ``ru_maxrss`` (the process's peak resident memory) is
the peak of that one job and not of whatever ran before it.  Two references run in the same way in the same
invocation, so the numbers can be read against the machine's speed at that moment:

* ``gaussian_filter``: ``scipy.ndimage.gaussian_filter(sigma=1)`` of one float32 volume of the same shape
  (one full-volume 3-D filter pass; the generator does the equivalent of about one of these for its
  scanner blur);
* ``write DICOM``: writing the generated scan as a DICOM series with ``write_ct_series`` (300 files), which
  is what ``lungcad synth --format dicom`` adds on top of generation.

Usage::

    .venv/bin/python benchmarks/bench_synth.py [--scans 2] [--shape-xy 512] [--slices 300]
                                               [--quick] [--json PATH]

``--quick`` (``make bench-check``): one scan, same shape.  The ratio (``generate_scan`` time / the
``gaussian_filter`` reference's, lower is better) goes to ``benchmarks/results/synth.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import default_json_path, write_result


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _job_generate(shape_xy: int, slices: int, index: int, write: bool, queue: Any) -> None:
    from lungcad.config import SynthConfig
    from lungcad.synth import generate_scan

    cfg = SynthConfig(shape_xy=shape_xy, n_slices=slices, slice_spacing_range_mm=(1.0, 1.0), seed=0)
    base = _peak_mb()
    start = time.perf_counter()
    scan = generate_scan(cfg, index)
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    out: dict[str, Any] = {
        "what": f"generate_scan #{index}",
        "seconds": seconds,
        "peak_mb": peak,
        "import_mb": base,
        "shape": scan.volume.shape,
        "spacing": scan.volume.spacing_zyx_mm,
        "lesions": len(scan.nodules),
        "stages": scan.timings_s,
    }
    if write:
        from lungcad.io.dicom_write import write_ct_series

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_ct_series(scan.volume, tmp, uid_seed="bench")
            out["write_dicom_s"] = time.perf_counter() - start
    queue.put(out)


def _job_gaussian(shape_xy: int, slices: int, queue: Any) -> None:
    import numpy as np
    from scipy import ndimage

    vol = np.random.default_rng(0).standard_normal((slices, shape_xy, shape_xy), dtype=np.float32)
    base = _peak_mb()
    start = time.perf_counter()
    ndimage.gaussian_filter(vol, sigma=1.0, output=vol)
    queue.put(
        {
            "what": "gaussian_filter(sigma=1) reference",
            "seconds": time.perf_counter() - start,
            "peak_mb": _peak_mb(),
            "import_mb": base,
        }
    )


def _run(target: Any, *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scans", type=int, default=2, help="scans to generate (each in its own process)")
    parser.add_argument("--shape-xy", type=int, default=512)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="one scan (make bench-check)")
    parser.add_argument("--json", type=Path, default=default_json_path("synth"), help="result JSON")
    args = parser.parse_args()
    if args.quick:
        args.scans = 1
    shape = f"{args.shape_xy}x{args.shape_xy}x{args.slices}"
    print(f"bench_synth: {shape} scans, {multiprocessing.cpu_count()} CPU cores; each row is a fresh process")
    rows = [_run(_job_gaussian, args.shape_xy, args.slices)]
    for i in range(args.scans):
        rows.append(_run(_job_generate, args.shape_xy, args.slices, i, i == 0))
    print(f"{'job':<36} {'seconds':>8} {'peak RSS MB':>12} {'(after imports)':>16}")
    for r in rows:
        print(f"{r['what']:<36} {r['seconds']:>8.2f} {r['peak_mb']:>12.0f} {r['import_mb']:>16.0f}")
    for r in rows[1:]:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        print(f"  {r['what']}: {r['lesions']} lesions, spacing {r['spacing']}; stages (s): {stages}")
        if "write_dicom_s" in r:
            print(f"  write_ct_series of that scan ({args.slices} files): {r['write_dicom_s']:.2f} s")
    gen = rows[1:]
    worst_s = max(r["seconds"] for r in gen)
    worst_mb = max(r["peak_mb"] for r in gen)
    ok = worst_s < 15.0 and worst_mb < 3072.0
    verdict = "MET" if ok else "MISSED"
    print(f"worst scan: {worst_s:.2f} s, {worst_mb:.0f} MB peak -> target (< 15 s, < 3 GB): {verdict}")
    mean_s = sum(r["seconds"] for r in gen) / len(gen)
    ratios = {f"generate_{shape}_ours_over_ref": mean_s / rows[0]["seconds"]}
    write_result("synth", ratios, {"rows": rows}, mode="quick" if args.quick else "full", path=args.json)


if __name__ == "__main__":
    main()
