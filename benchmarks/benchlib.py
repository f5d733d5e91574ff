"""What every benchmark script shares: its JSON result file and the ratio comparison of ``make bench-check``.

A result file (``benchmarks/results/<name>.json`` unless ``--json PATH``)::

    {"benchmark": "intake", "mode": "quick", "ratios": {"lidc0001_ours_over_ref": 1.47, ...},
     "measurements": {...everything the printout shows...}, "machine": {...}, "created": "2026-...Z"}

Every ratio is *ours / reference, both measured in the same run* (time over time, lower is better), so a
slower or busier machine moves both sides and the ratio stays comparable across machines and days; a
ratio named ``..._ours_over_ref`` of 1.47 means lungcad took 1.47x the reference's time.

The baseline (``benchmarks/baseline.json``) holds one value per ratio; ``compare`` flags a ratio that grew
by more than the tolerance (20 %): 1.47 -> 1.80 is +22 %, a regression; 1.47 -> 1.70 (+16 %) passes.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
BASELINE = BENCH_DIR / "baseline.json"
TOLERANCE = 0.20


def default_json_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.json"


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def matmul_peak_gflops(dtype_name: str, sizes: tuple[int, ...] = (2048, 3072), repeats: int = 8) -> float:
    """This machine's practical compute ceiling for ``dtype_name`` ("fp32" or "bf16"), GFLOP/s.

    The best single ``n x n`` GEMM over ``repeats`` runs and every size, in the calling process (set its
    thread count first).  The best, not the mean: the ceiling is what the cores reach when nothing
    disturbs them (a mean of 5 runs of one size read 748 and 937 GFLOP/s bf16 on two quiet runs).
    """
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        a @ b
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def write_result(
    name: str,
    ratios: dict[str, float],
    measurements: dict[str, Any],
    *,
    mode: str,
    path: Path | None = None,
    skipped: str | None = None,
) -> Path:
    """Write one benchmark's result JSON (atomically) and say where.

    Args:
        name: benchmark name (``intake``, ``detect``, ...), the key in the baseline.
        ratios: ours / reference time ratios measured in this run (lower is better).
        measurements: the raw numbers behind the printout (seconds, MB, ...).
        mode: ``quick`` or ``full``.
        path: output file (default ``benchmarks/results/<name>.json``).
        skipped: why parts of the benchmark did not run (missing data), if they did not.
    """
    target = Path(path) if path is not None else default_json_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "mode": mode,
        "ratios": {k: float(v) for k, v in ratios.items()},
        "measurements": measurements,
        "machine": _machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if skipped:
        doc["skipped"] = skipped
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(target)
    print(f"\nresult JSON: {target}")
    return target


@dataclass(frozen=True)
class Row:
    """One ratio of the comparison."""

    benchmark: str
    ratio: str
    baseline: float | None
    current: float | None
    verdict: str  # ok | regression | no baseline | not measured

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None or self.baseline <= 0:
            return None
        return self.current / self.baseline - 1.0


def baseline_values(baseline: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{"ratios": {bench: {ratio: {"value": v, ...}}}}`` -> ``{bench: {ratio: v}}``."""
    out: dict[str, dict[str, float]] = {}
    for bench, ratios in baseline.get("ratios", {}).items():
        out[bench] = {k: float(v["value"] if isinstance(v, dict) else v) for k, v in ratios.items()}
    return out


def compare(
    results: dict[str, dict[str, Any]], baseline: dict[str, Any], tolerance: float | None = None
) -> list[Row]:
    """Every ratio of the baseline and of the results, with its verdict.

    Args:
        results: benchmark name -> result document (``write_result``'s JSON).
        baseline: the baseline document.
        tolerance: allowed growth of a ratio (default the baseline's ``tolerance``, else 20 %).

    A ratio is a regression when ``current > baseline x (1 + tolerance)``; a baseline ratio that no result
    measured (its data absent, the benchmark not run) is "not measured", a measured ratio without a baseline
    "no baseline"; neither fails the check.
    """
    tol = float(baseline.get("tolerance", TOLERANCE) if tolerance is None else tolerance)
    base = baseline_values(baseline)
    rows: list[Row] = []
    for bench in sorted(set(base) | set(results)):
        measured = {k: float(v) for k, v in results.get(bench, {}).get("ratios", {}).items()}
        expected = base.get(bench, {})
        for ratio in sorted(set(expected) | set(measured)):
            b, c = expected.get(ratio), measured.get(ratio)
            if c is None:
                verdict = "not measured"
            elif b is None:
                verdict = "no baseline"
            elif c > b * (1.0 + tol):
                verdict = "regression"
            else:
                verdict = "ok"
            rows.append(Row(bench, ratio, b, c, verdict))
    return rows


def format_rows(rows: list[Row]) -> str:
    head = f"{'benchmark':<8} {'ratio (ours / reference)':<40} {'baseline':>9} {'now':>9} {'change':>8}"
    lines = [head + "  verdict"]
    for r in rows:
        b = "-" if r.baseline is None else f"{r.baseline:.4g}"
        c = "-" if r.current is None else f"{r.current:.4g}"
        ch = "-" if r.change is None else f"{100 * r.change:+.0f}%"
        lines.append(f"{r.benchmark:<8} {r.ratio:<40} {b:>9} {c:>9} {ch:>8}  {r.verdict}")
    return "\n".join(lines)


def load_results(folder: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """Every result JSON in ``folder`` by benchmark name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        doc = json.loads(path.read_text())
        out[str(doc["benchmark"])] = doc
    return out
