"""Evaluation report files: ``summary.json`` and its figures (matplotlib, Agg backend, no display needed).

Every file is written to a temporary name in the target folder and renamed onto its name, so an
interrupted run never leaves a half-written file in place of a previous one.  Figures without data (no
triage probability, no Lung-RADS prediction) are still written, with a "no data" note, so the file set of a
report does not depend on the cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lungcad.evaluate.froc_report import plot_froc
from lungcad.evaluate.summary import EvaluationSummary, GroupSensitivity, Reliability
from lungcad.fileio import atomic_write, atomic_write_json

SUMMARY_JSON = "summary.json"
RELIABILITY_TRIAGE_PNG = "reliability_triage.png"
RELIABILITY_DETECTION_PNG = "reliability_detection.png"
SENSITIVITY_PNG = "sensitivity_by_size.png"
LUNG_RADS_PNG = "lung_rads_confusion.png"
FROC_PNG = "froc.png"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Save a figure atomically (temporary file in the same folder, then rename) and close it."""
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")


def plot_reliability(rel: Reliability, path: Path, title: str) -> None:
    """Reliability diagram: fraction of positives per probability bin against the diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    try:
        width = 1.0 / rel.n_bins
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=1, label="perfect calibration")
        if rel.n:
            ax.bar(
                rel.bin_centre,
                rel.accuracy,
                width=width * 0.9,
                color="tab:blue",
                alpha=0.7,
                label="fraction positive",
            )
            ax.plot(rel.confidence, rel.accuracy, "o", color="tab:orange", label="mean probability")
            ax.set_title(f"{title}  (n {rel.n}, ECE {rel.ece:.3f})")
        else:
            ax.set_title(title)
            _no_data(ax)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed fraction positive")
        ax.legend(loc="upper left")
        _save(fig, path)
    finally:
        plt.close(fig)


def _bars(ax: Any, groups: tuple[GroupSensitivity, ...], title: str) -> None:
    names = [g.group for g in groups]
    heights = [g.sensitivity or 0.0 for g in groups]
    ax.bar(names, heights, color="tab:blue")
    for k, g in enumerate(groups):
        label = f"{g.found}/{g.total}" if g.total else "n/a"
        ax.text(k, heights[k] + 0.02, label, ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize=8)


def plot_sensitivity(summary: EvaluationSummary, path: Path) -> None:
    """Bar charts of sensitivity by size band (mm) and by texture, with found / total on each bar."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), dpi=120)
    try:
        _bars(left, summary.by_size, f"by diameter (mm), threshold {summary.threshold:g}")
        _bars(right, summary.by_texture, "by texture")
        _save(fig, path)
    finally:
        plt.close(fig)


def plot_lung_rads(summary: EvaluationSummary, path: Path) -> None:
    """Lung-RADS confusion matrix: rows ground truth, columns predicted, counts in the cells."""
    plt = _pyplot()
    c = summary.lung_rads
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    try:
        top = max(1, max(max(r) for r in c.matrix))
        ax.imshow(c.matrix, cmap="Blues", vmin=0, vmax=top)
        ticks = range(len(c.categories))
        ax.set_xticks(ticks, c.categories)
        ax.set_yticks(ticks, c.categories)
        for i, row in enumerate(c.matrix):
            for j, v in enumerate(row):
                colour = "white" if v > top / 2 else "black"  # readable on dark cells
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color=colour)
        ax.set_xlabel("predicted category")
        ax.set_ylabel("ground-truth category")
        acc = "n/a" if c.accuracy is None else f"{c.accuracy:.3f}"
        ax.set_title(f"Lung-RADS (n {c.n}, accuracy {acc})")
        _save(fig, path)
    finally:
        plt.close(fig)


def write_report(
    summary: EvaluationSummary, out_dir: str | Path, *, document: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write ``summary.json`` and the figures into ``out_dir`` (created if missing).

    ``summary.json`` holds ``document`` when given (``EvaluationReport.to_dict()``: the summary plus model,
    cohort and failed scans), else ``summary.to_dict()``.

    Files: ``summary.json``, ``reliability_triage.png``, ``reliability_detection.png``,
    ``sensitivity_by_size.png`` (size bands and textures), ``lung_rads_confusion.png``, and ``froc.png``
    when the summary holds a FROC result.

    Returns:
        The written files by name (``"summary"``, ``"reliability_triage"``, ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out / SUMMARY_JSON,
        "reliability_triage": out / RELIABILITY_TRIAGE_PNG,
        "reliability_detection": out / RELIABILITY_DETECTION_PNG,
        "sensitivity": out / SENSITIVITY_PNG,
        "lung_rads": out / LUNG_RADS_PNG,
    }
    doc = summary.to_dict() if document is None else dict(document)
    atomic_write_json(paths["summary"], doc, indent=2, allow_nan=False)
    plot_reliability(summary.triage.reliability, paths["reliability_triage"], "triage probability")
    plot_reliability(summary.detection_calibration, paths["reliability_detection"], "detection probability")
    plot_sensitivity(summary, paths["sensitivity"])
    plot_lung_rads(summary, paths["lung_rads"])
    if summary.froc is not None:
        paths["froc"] = out / FROC_PNG
        plot_froc(summary.froc, paths["froc"])
    return paths
