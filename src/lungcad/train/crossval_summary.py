"""Pool the folds of a LUNA16 cross-validation and score them as the LUNA16 evaluation does.

LUNA16 scores the concatenation of the ten folds' candidates against ``annotations.csv`` and
``annotations_excluded.csv`` over all scans at once (one FROC curve, FPs per scan counted over every scan),
which is not the mean of the per-fold CPMs: a fold with few nodules weighs less in the pooled curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lungcad.annotations.luna16 import read_luna16_submission, write_luna16_submission
from lungcad.annotations.model import LunaCandidate
from lungcad.config import LungcadConfig
from lungcad.evaluate.froc import FrocResult, evaluate_froc
from lungcad.fileio import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from lungcad.train.crossval import FoldResult
    from lungcad.train.crossval_layout import Luna16Layout

FROC_FILE = "froc.json"
CANDIDATES_FILE = "candidates.csv"
POOLED_CANDIDATES = "candidates_all.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


@dataclass(frozen=True)
class CVSummary:
    """The pooled result: its ``summary.json`` document and the files written."""

    doc: dict[str, Any]
    froc: FrocResult
    files: dict[str, Path]

    @property
    def cpm(self) -> float:
        return self.froc.cpm


def score_luna16(
    layout: Luna16Layout,
    uids: Sequence[str],
    rows: Sequence[LunaCandidate],
    cfg: LungcadConfig,
    *,
    bootstrap_samples: int = 0,
) -> FrocResult:
    """LUNA16 FROC of ``rows`` over the scans ``uids``, with the folder's annotations and excluded findings
    and the ``evaluate`` section's rules (cap per scan, FP rates, diameter of excluded findings of unknown
    size).

    Raises:
        InputError: no annotated nodule in ``uids`` (see ``evaluate_froc``).
    """
    e = cfg.evaluate
    return evaluate_froc(
        layout.annotations,
        layout.excluded,
        list(uids),
        list(rows),
        max_candidates_per_scan=e.max_candidates_per_scan,
        fp_rates=e.fp_rates,
        excluded_unknown_diameter_mm=e.excluded_unknown_diameter_mm,
        bootstrap_samples=bootstrap_samples,
        seed=cfg.train.seed,
    )


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _markdown(doc: dict[str, Any]) -> str:
    pooled = doc["pooled"]
    rates = pooled["fp_rates"]
    lines = [
        "# LUNA16 cross-validation",
        "",
        f"Data: `{doc['data_dir']}`; folds run: {', '.join(str(f) for f in doc['folds'])}; "
        f"initial weights: {doc['init_from'] or 'none (from scratch)'}; "
        f"excluded findings: {'annotations_excluded.csv' if doc['has_excluded'] else 'none (file absent)'}.",
        "",
        "| fold | scans | nodules | candidates | CPM | train s | detect s | s / scan |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in doc["per_fold"]:
        t = f["timings"]
        nodules = f["froc"]["counts"]["n_nodules"] if f["froc"] else 0
        lines.append(
            f"| {f['fold']} | {f['n_scans']} | {nodules} | {f['n_candidates']} | {_f(f['cpm'])} | "
            f"{t['train_s']:.1f} | {t['detect_s']:.1f} | {t['s_per_scan']:.2f} |"
        )
    c = pooled["counts"]
    boot = pooled.get("bootstrap")
    ci = (
        f" (95 % CI {boot['cpm_low']:.3f}-{boot['cpm_high']:.3f}, {boot['n_samples']} bootstrap samples)"
        if boot
        else ""
    )
    lines += [
        f"| **pooled** | {c['n_scans']} | {c['n_nodules']} | {c['n_candidates']} | **{pooled['cpm']:.3f}** | "
        f"{doc['timings']['train_s']:.1f} | {doc['timings']['detect_s']:.1f} | "
        f"{doc['timings']['s_per_scan']:.2f} |",
        "",
        f"Pooled CPM {pooled['cpm']:.3f}{ci}: one FROC over all {c['n_scans']} scans of the folds run "
        f"(LUNA16 rules), {c['n_tp']} of {c['n_nodules']} nodules found, {c['n_fp']} false positives.",
        "",
        "| FPs / scan | " + " | ".join(f"{r:g}" for r in rates) + " |",
        "|---|" + "---|" * len(rates),
        "| sensitivity | " + " | ".join(f"{s:.3f}" for s in pooled["sensitivities"]) + " |",
    ]
    if boot:
        lines.append(
            "| 95 % CI | "
            + " | ".join(
                f"{lo:.3f}-{hi:.3f}"
                for lo, hi in zip(boot["sensitivities_low"], boot["sensitivities_high"], strict=True)
            )
            + " |"
        )
    notes = [f"fold {f['fold']}: {f['note']}" for f in doc["per_fold"] if f["note"]]
    notes += [
        f"fold {f['fold']}: {len(f['failed_scans'])} scan(s) failed"
        for f in doc["per_fold"]
        if f["failed_scans"]
    ]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def pooled_summary(
    layout: Luna16Layout,
    out: Path,
    cfg: LungcadConfig,
    results: Sequence[FoldResult],
    init_from: Path | None,
) -> CVSummary:
    """Concatenate the folds' ``candidates.csv`` into ``candidates_all.csv`` and score it once over all
    their scans (bootstrap CI with ``evaluate.bootstrap_samples``); write ``summary.json`` and ``summary.md``.

    Raises:
        InputError: no annotated nodule in the scans of the folds run.
    """
    rows: list[LunaCandidate] = []
    uids: list[str] = []
    for r in results:
        rows += read_luna16_submission(out / f"fold{r.fold}" / CANDIDATES_FILE)
        uids += r.doc["seriesuids"]
    write_luna16_submission(rows, out / POOLED_CANDIDATES)
    froc = score_luna16(
        layout, uids, read_luna16_submission(out / POOLED_CANDIDATES), cfg,
        bootstrap_samples=cfg.evaluate.bootstrap_samples,
    )  # fmt: skip
    per_fold = [
        {k: v for k, v in r.doc.items() if k != "seriesuids"} | {"skipped": r.skipped} for r in results
    ]
    train_s = sum(f["timings"]["train_s"] for f in per_fold)
    detect_s = sum(f["timings"]["detect_s"] for f in per_fold)
    doc = {
        "protocol": "LUNA16 10-fold cross-validation (train on 9 subsets, detect on 1; pooled FROC)",
        "data_dir": str(layout.root),
        "folds": [r.fold for r in results],
        "init_from": str(init_from) if init_from else None,
        "has_excluded": layout.has_excluded,
        "n_scans_outside_subsets": layout.n_outside,
        "pooled": froc.to_dict(),
        "cpm": froc.cpm,
        "per_fold": per_fold,
        "timings": {
            "train_s": round(train_s, 2),
            "detect_s": round(detect_s, 2),
            "s_per_scan": round(detect_s / max(1, len(uids)), 3),
        },
    }
    files = {
        "candidates": out / POOLED_CANDIDATES,
        "summary": atomic_write_json(out / SUMMARY_JSON, doc),
        "markdown": atomic_write_text(out / SUMMARY_MD, _markdown(doc)),
    }
    return CVSummary(doc, froc, files)
