"""FROC curve files: the curve as CSV and as a PNG plot (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

from lungcad.evaluate.froc import FrocResult
from lungcad.fileio import atomic_open, atomic_write


def write_froc_csv(result: FrocResult, path: str | Path) -> None:
    """Curve points: ``fps_per_scan,sensitivity,threshold`` (threshold ``inf`` for the (0, 0) point)."""
    c = result.curve
    with atomic_open(path) as handle:
        handle.write("fps_per_scan,sensitivity,threshold\n")
        for x, y, t in zip(c.fps_per_scan, c.sensitivity, c.thresholds, strict=True):
            handle.write(f"{float(x)!r},{float(y)!r},{'inf' if math.isinf(t) else repr(float(t))}\n")


def write_bootstrap_csv(result: FrocResult, path: str | Path) -> None:
    """Bootstrap band: ``fps_per_scan,sensitivity_mean,sensitivity_low,sensitivity_high`` per grid point."""
    b = result.bootstrap
    if b is None:
        raise ValueError("the result has no bootstrap (run evaluate_froc with bootstrap_samples > 0)")
    with atomic_open(path) as handle:
        handle.write("fps_per_scan,sensitivity_mean,sensitivity_low,sensitivity_high\n")
        for row in zip(b.grid_fps, b.grid_mean, b.grid_low, b.grid_high, strict=True):
            handle.write(",".join(f"{float(v):.9g}" for v in row) + "\n")


def plot_froc(result: FrocResult, path: str | Path, *, title: str = "FROC") -> None:
    """Plot the FROC curve (log2 FP axis from 1/8 to 8, as LUNA16 shows it) with the bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = result.fp_rates
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    try:
        c = result.curve
        x = list(c.fps_per_scan) + [max(rates[-1], float(c.fps_per_scan[-1]))]
        y = list(c.sensitivity) + [float(c.sensitivity[-1])]  # flat extension, as the read-off does
        ax.plot(x, y, color="tab:blue", lw=2, label=f"CPM {result.cpm:.3f}")
        ax.plot(rates, result.sensitivities, "o", color="tab:blue")
        b = result.bootstrap
        if b is not None:
            pct = int(round(100 * b.confidence))
            ax.fill_between(
                b.grid_fps, b.grid_low, b.grid_high, color="tab:blue", alpha=0.15, label=f"{pct} % CI"
            )
        ax.set_xscale("log", base=2)
        ax.set_xlim(rates[0], rates[-1])
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.set_ylim(0, 1)
        ax.set_xlabel("average number of false positives per scan")
        ax.set_ylabel("sensitivity")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
