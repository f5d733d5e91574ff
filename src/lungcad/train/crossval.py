"""The official LUNA16 10-fold protocol: train on nine subsets, detect on the tenth, pool, score.

``run_luna16_cv`` (what ``lungcad luna16-cv`` runs) writes into ``out_dir``::

    cache/                 preprocessed scans, shared by the folds (each scan is preprocessed once)
    fold<k>/data/          links to the nine training subsets and the CSVs (a LUNA16 folder for ``train``)
    fold<k>/run/           the training run (``lungcad train``'s run folder; its own patient split for
                           validation inside the nine subsets)
    fold<k>/model.pt       the exported model of the run (best validation CPM, else the last checkpoint)
    fold<k>/train.json     training wall time and steps (written once the model is exported)
    fold<k>/candidates.csv LUNA16 submission rows of every scan of subset<k>
    fold<k>/froc.json      the fold's FROC / CPM by the LUNA16 rules, its scans and timings (written last)
    candidates_all.csv     every fold's candidates, concatenated
    summary.json, summary.md  pooled FROC / CPM (bootstrap CI) over all scans of the folds run, per fold

Resumable at every level: a fold with ``froc.json`` and ``candidates.csv`` is skipped, a fold with its
``model.pt`` goes straight to detection, and an unfinished training run is resumed from its ``last.ckpt``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungcad.annotations.luna16 import read_luna16_submission, write_luna16_submission
from lungcad.annotations.model import LunaCandidate
from lungcad.config import LungcadConfig
from lungcad.errors import InputError
from lungcad.evaluate.froc import _cap
from lungcad.evaluate.runner import run_cohort
from lungcad.fileio import atomic_write_json, ensure_output_dir
from lungcad.infer.candidates import to_luna_candidates
from lungcad.infer.detector import Detector
from lungcad.train.crossval_layout import N_FOLDS, Luna16Layout, read_luna16_layout, training_view
from lungcad.train.crossval_summary import CANDIDATES_FILE, FROC_FILE, CVSummary, pooled_summary, score_luna16
from lungcad.train.export import export_checkpoint, run_card
from lungcad.train.fit import fit, initial_weights
from lungcad.train.state import LAST_CKPT, STATUS_FILE

MODEL_FILE = "model.pt"
TRAIN_FILE = "train.json"


@dataclass(frozen=True)
class FoldResult:
    """One fold's ``froc.json`` document and whether this call skipped the fold (outputs existed)."""

    fold: int
    doc: dict[str, Any]
    skipped: bool


class CVInterrupted(Exception):
    """A fold's training was interrupted (Ctrl-C): rerun the same command to resume it."""

    def __init__(self, fold: int, run_dir: Path) -> None:
        super().__init__(f"fold {fold} interrupted; its run folder {run_dir} resumes on the next start")
        self.fold = fold
        self.run_dir = run_dir


def parse_folds(text: str | Iterable[int] | None) -> list[int]:
    """``"0,3"`` (or integers) -> sorted unique fold numbers in 0..9; ``None`` or ``""`` -> all ten.

    Raises:
        InputError: a fold that is not an integer in 0..9.
    """
    if text is None or text == "":
        return list(range(N_FOLDS))
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(v) for v in text]
    folds: set[int] = set()
    for item in items:
        if not item.lstrip("-").isdigit() or not 0 <= int(item) < N_FOLDS:
            raise InputError(
                f"fold must be an integer in 0..{N_FOLDS - 1}, got {item!r}",
                fix="pass --folds as comma-separated fold numbers, e.g. --folds 0,3",
            )
        folds.add(int(item))
    return sorted(folds)


def _capped_candidates(uid: str, findings: list, cap: int) -> list[LunaCandidate]:
    """At most ``cap`` candidates per scan, cut exactly as the LUNA16 evaluation cuts (``froc._cap``), so
    the file scores the same whether or not an evaluator applies the cap again."""
    rows = to_luna_candidates(uid, findings)
    keep = _cap(np.asarray([r.value for r in rows], dtype=np.float64), cap)
    return [rows[i] for i in keep]


def _train_fold(
    layout: Luna16Layout,
    fold: int,
    fold_dir: Path,
    cfg: LungcadConfig,
    init_from: Path | None,
    cache_dir: Path,
    use_mlflow: bool,
    show_progress: bool,
) -> dict[str, Any]:
    """Train fold ``fold`` (or resume its run), export ``model.pt``; returns ``train.json``'s document."""
    run_dir = fold_dir / "run"
    view = training_view(layout, fold, fold_dir / "data")
    resume = (run_dir / STATUS_FILE).exists()
    t0 = time.perf_counter()
    result = fit(
        cfg,
        [view],
        run_dir,
        resume=resume,
        init_from=None if resume else init_from,  # a resumed run keeps the weights it started from
        cache_dir=cache_dir,
        use_mlflow=use_mlflow,
        show_progress=show_progress,
    )
    train_s = time.perf_counter() - t0
    if result.state.status == "interrupted":
        raise CVInterrupted(fold, run_dir)
    checkpoint = result.best_checkpoint or run_dir / LAST_CKPT
    export_checkpoint(
        checkpoint, fold_dir / MODEL_FILE, model_id=f"luna16-fold{fold}", card=run_card(run_dir)
    )
    doc = {
        "fold": fold,
        "train_s": round(train_s, 2),
        "resumed": resume,
        "steps": result.state.step,
        "epochs": result.state.epoch,
        "status": result.state.status,
        "best_cpm_validation": result.state.best_cpm,
        "checkpoint": checkpoint.name,
        "n_train_scans": sum(len(v) for k, v in layout.subsets.items() if k != fold),
        "notes": result.notes,
    }
    atomic_write_json(fold_dir / TRAIN_FILE, doc)
    return doc


def run_fold(
    layout: Luna16Layout,
    fold: int,
    out_dir: Path,
    cfg: LungcadConfig,
    *,
    init_from: Path | None = None,
    use_mlflow: bool = True,
    show_progress: bool = False,
    bf16: bool = True,
) -> FoldResult:
    """Fold ``fold`` of the protocol: train on the other nine subsets, detect on ``subset<fold>``, score.

    A scan that cannot be analysed is listed in ``froc.json`` (``failed_scans``) and stays in the evaluated
    list with no candidate, as a submission missing a scan is scored by LUNA16.
    """
    fold_dir = out_dir / f"fold{fold}"
    if (fold_dir / FROC_FILE).is_file() and (fold_dir / CANDIDATES_FILE).is_file():
        return FoldResult(fold, json.loads((fold_dir / FROC_FILE).read_text()), skipped=True)
    fold_dir.mkdir(parents=True, exist_ok=True)
    if (fold_dir / MODEL_FILE).is_file() and (fold_dir / TRAIN_FILE).is_file():
        train_doc = json.loads((fold_dir / TRAIN_FILE).read_text())
    else:
        train_doc = _train_fold(
            layout, fold, fold_dir, cfg, init_from, out_dir / "cache", use_mlflow, show_progress
        )
    records = layout.subsets[fold]
    detector = Detector.load(fold_dir / MODEL_FILE, config=cfg, bf16=bf16)
    t0 = time.perf_counter()
    run = run_cohort(detector, records, strict=False, show_progress=show_progress)
    detect_s = time.perf_counter() - t0
    cap = cfg.evaluate.max_candidates_per_scan
    rows = [c for ev in run.scans for c in _capped_candidates(ev.record.scan_id, ev.result.findings, cap)]
    write_luna16_submission(rows, fold_dir / CANDIDATES_FILE)
    uids = [r.scan_id for r in records]
    froc: dict[str, Any] | None = None
    note = None
    if not set(uids).isdisjoint(a.seriesuid for a in layout.annotations):
        # scored from the file as written: what a user would submit is what is measured
        rows_back = read_luna16_submission(fold_dir / CANDIDATES_FILE)
        froc = score_luna16(layout, uids, rows_back, cfg).to_dict()
    else:  # the fold alone has no sensitivity; its scans (and false positives) still count when pooled
        note = f"no annotated nodule in subset{fold}: its own CPM is undefined (its scans count when pooled)"
    doc = {
        "fold": fold,
        "subset": f"subset{fold}",
        "n_scans": len(uids),
        "n_candidates": len(rows),
        "seriesuids": uids,
        "froc": froc,
        "cpm": None if froc is None else froc["cpm"],
        "note": note,
        "failed_scans": [f.to_dict() for f in run.failed],
        "timings": {
            "train_s": train_doc["train_s"],
            "detect_s": round(detect_s, 2),
            "s_per_scan": round(detect_s / max(1, len(records)), 3),
        },
        "training": train_doc,
        "model": {"id": detector.bundle.model_id, "version": detector.bundle.model_version},
    }
    atomic_write_json(fold_dir / FROC_FILE, doc)  # last: its presence marks the fold finished
    return FoldResult(fold, doc, skipped=False)


def run_luna16_cv(
    data_dir: str | Path,
    out_dir: str | Path,
    cfg: LungcadConfig,
    folds: Iterable[int] = range(N_FOLDS),
    init_from: str | Path | None = None,
    *,
    use_mlflow: bool = True,
    show_progress: bool = False,
    bf16: bool = True,
    on_fold: Any = None,
) -> CVSummary:
    """Run the LUNA16 10-fold protocol (or the given folds) and score the pooled candidates.

    Args:
        data_dir: LUNA16 folder (``subset0`` ... ``subset9``, ``annotations.csv``, optionally
            ``annotations_excluded.csv``).
        out_dir: output folder (layout in the module docstring); an earlier run there is resumed.
        cfg: full configuration (``train``, ``model``, ``infer``, ``evaluate`` sections).
        folds: fold numbers in 0..9 (fold k detects on ``subset<k>``).
        init_from: a model file or checkpoint each fold fine-tunes from (``None``: from scratch).
        use_mlflow: track each fold's training in MLflow (else CSV logs).
        show_progress: progress bars on the terminal.
        bf16: bfloat16 autocast for detection (as ``lungcad evaluate``; off: ``--no-bf16``).
        on_fold: called with each ``FoldResult`` as it finishes (the CLI prints a line).

    Returns:
        The pooled summary (also ``summary.json`` / ``summary.md``).

    Raises:
        InputError: a bad LUNA16 folder, fold number, output folder or initial weights; no nodule in the
            scans of the folds run.
        CVInterrupted: a fold's training was interrupted; rerunning the same call resumes it.
    """
    fold_list = parse_folds(list(folds))
    if not fold_list:
        raise InputError("no fold to run", fix="pass --folds with fold numbers in 0..9")
    layout = read_luna16_layout(data_dir)
    out = ensure_output_dir(out_dir)
    init = Path(init_from) if init_from is not None else None
    if init is not None:
        initial_weights(init, cfg)  # a missing file or another architecture fails before any fold trains
    results = []
    for k in fold_list:
        result = run_fold(
            layout,
            k,
            out,
            cfg,
            init_from=init,
            use_mlflow=use_mlflow,
            show_progress=show_progress,
            bf16=bf16,
        )
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    return pooled_summary(layout, out, cfg, results, init)
