"""Forward-pass speed of the lungcad U-Net against MONAI BasicUNet on this CPU (not a timed test).

Measures, in one run and on the same inputs (batch 1, ``torch.set_num_threads(2)`` by default):

* forward time of ``LungUNet`` (default config) and of MONAI ``BasicUNet`` with its default features
  ``(32, 32, 64, 128, 256, 32)`` for 96^3 and 128^3 patches, in fp32 and under bf16 autocast, plus our model
  through ``optimize_for_cpu`` (TorchScript, BN folded) in fp32;
* FLOPs per voxel of both (``lungcad.model.flops``), achieved GFLOP/s, and the share of a matmul peak
  probed in the same run (a 2048^2 GEMM, fp32 and bf16);
* the reference / ours time ratio, and a full-scan estimate: 300 x 350 x 350 voxels (a chest at 1 mm)
  tiled by 96^3 windows at overlap 0.25 as MONAI's ``sliding_window_inference`` does (blending and
  preprocessing not included).

Every time is the minimum over ``--repeats`` runs after one warm-up, the variants timed in turn (the CPU
is shared: interleaving spreads a disturbance over all of them, the minimum is the least disturbed run).

Run: ``.venv/bin/python benchmarks/bench_model.py [--quick] [--json PATH]`` (~1-2 min; ``--quick``, used by
``make bench-check``: 96^3 only, 2 repeats of ours and 1 of the reference).  The ratios (our forward time /
BasicUNet's at the same patch and precision, lower is better) go to ``benchmarks/results/model.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.networks.nets import BasicUNet
from torch import nn

from benchlib import default_json_path, matmul_peak_gflops, write_result
from lungcad.config import ModelConfig
from lungcad.model import LungUNet, flops_per_voxel, optimize_for_cpu

SCAN_VOXELS = (300, 350, 350)
WINDOW, OVERLAP = 96, 0.25


def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def windows_per_scan(scan: tuple[int, ...], window: int, overlap: float) -> int:
    """Number of windows MONAI's sliding window places: ``ceil((L - w) / step) + 1`` per axis."""
    step = max(int(window * (1 - overlap)), 1)
    return math.prod(math.ceil(max(s - window, 0) / step) + 1 for s in scan)


@dataclass
class Variant:
    name: str
    model: nn.Module
    precision: str
    repeats: int
    best_s: float = math.inf

    def run(self, x: torch.Tensor) -> object:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()
        with torch.inference_mode(), autocast:
            return self.model(x)


def measure(variants: list[Variant], size: int) -> None:
    """Best time of every variant on one ``size^3`` input, interleaved round-robin.

    The CPU is shared with other work; timing the variants in turn (rather than one after the other)
    spreads a disturbance over all of them, and the minimum keeps each one's least disturbed run.
    """
    x = torch.rand(1, 1, size, size, size)
    for v in variants:
        v.best_s = math.inf
        v.run(x)  # warm-up: oneDNN primitive creation, allocator
    for r in range(max(v.repeats for v in variants)):
        for v in variants:
            if r < v.repeats:
                v.best_s = min(v.best_s, time_once(lambda v=v: v.run(x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128], help="cubic patch sides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=6, help="timed runs of our model")
    parser.add_argument("--reference-repeats", type=int, default=2, help="timed runs of BasicUNet")
    parser.add_argument("--json", type=Path, default=default_json_path("model"), help="result JSON")
    parser.add_argument("--quick", action="store_true", help="96^3, 2 / 1 repeats (make bench-check)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.reference_repeats = [96], 2, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ours = LungUNet.from_config(ModelConfig()).eval()
    reference = BasicUNet(spatial_dims=3, in_channels=1, out_channels=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript deprecation notice
        ours_jit = optimize_for_cpu(ours)
    fpv = {"ours": flops_per_voxel(ours, (32, 32, 32)), "basicunet": flops_per_voxel(reference, (32, 32, 32))}
    peak = {"fp32": matmul_peak_gflops("fp32"), "bf16": matmul_peak_gflops("bf16")}

    # The CPU is shared: a load average near or above the core count means the numbers below are disturbed.
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"threads {args.threads}; matmul peak fp32 {peak['fp32']:.0f} GFLOP/s, "
        f"bf16 {peak['bf16']:.0f} GFLOP/s"
    )
    print(
        f"FLOPs/voxel: ours {fpv['ours'] / 1e3:.2f} k, BasicUNet {fpv['basicunet'] / 1e3:.1f} k "
        f"({fpv['basicunet'] / fpv['ours']:.1f}x)"
    )
    header = f"{'patch':>6} {'model':<14} {'prec':<5} {'ms':>9} {'GFLOP/s':>8} {'%peak':>6} {'ref/ours':>9}"
    print(header)
    print("-" * len(header))

    variants = [
        Variant("basicunet", reference, "fp32", args.reference_repeats),
        Variant("basicunet", reference, "bf16", args.reference_repeats),
        Variant("ours", ours, "fp32", args.repeats),
        Variant("ours", ours, "bf16", args.repeats),
        Variant("ours-jit", ours_jit, "fp32", args.repeats),
    ]
    rows = []
    for size in args.sizes:
        measure(variants, size)
        ref_ms = {v.precision: v.best_s * 1e3 for v in variants if v.name == "basicunet"}
        for v in variants:
            flops = fpv["basicunet" if v.name == "basicunet" else "ours"] * size**3
            gflops = flops / v.best_s / 1e9
            row = {
                "patch": size,
                "model": v.name,
                "precision": v.precision,
                "ms": v.best_s * 1e3,
                "gflops": gflops,
                "peak_fraction": gflops / peak[v.precision],
            }
            ratio = ""
            if v.name != "basicunet":
                row["speedup_vs_basicunet_same_precision"] = ref_ms[v.precision] / row["ms"]
                ratio = f"{row['speedup_vs_basicunet_same_precision']:.1f}x"
            rows.append(row)
            print(
                f"{size:>5}^3 {v.name:<14} {v.precision:<5} {row['ms']:>9.1f} {gflops:>8.1f} "
                f"{100 * row['peak_fraction']:>5.0f}% {ratio:>9}",
                flush=True,
            )

    n_win = windows_per_scan(SCAN_VOXELS, WINDOW, OVERLAP)
    at96 = {(r["model"], r["precision"]): r["ms"] for r in rows if r["patch"] == WINDOW}
    if at96:
        ref_s = n_win * at96[("basicunet", "fp32")] / 1e3
        print(
            f"\nfull-scan estimate, {SCAN_VOXELS} voxels, {n_win} windows of {WINDOW}^3 at overlap {OVERLAP}:"
        )
        for key, ms in sorted(at96.items(), key=lambda kv: kv[1], reverse=True):
            scan_s = n_win * ms / 1e3
            print(f"  {key[0]:<10} {key[1]:<5} {scan_s:7.1f} s   ({ref_s / scan_s:5.1f}x vs BasicUNet fp32)")
    late = {"fp32": matmul_peak_gflops("fp32"), "bf16": matmul_peak_gflops("bf16")}
    print(f"matmul peak probed again at the end: fp32 {late['fp32']:.0f}, bf16 {late['bf16']:.0f} GFLOP/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    ratios = {
        f"p{r['patch']}_{r['model'].replace('-', '_')}_{r['precision']}_ours_over_ref": 1.0
        / r["speedup_vs_basicunet_same_precision"]
        for r in rows
        if r["model"] != "basicunet"
    }
    measured = {"threads": args.threads, "matmul_peak_gflops": peak, "flops_per_voxel": fpv, "rows": rows}
    write_result("model", ratios, measured, mode="quick" if args.quick else "full", path=args.json)


if __name__ == "__main__":
    main()
