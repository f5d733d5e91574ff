"""``lungcad luna16-cv``: the official LUNA16 10-fold protocol (``lungcad.train.crossval``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from lungcad.cli.common import console, err_console, get_config, print_json


def luna16_cv(
    data: Path = typer.Option(..., "--data", help="LUNA16 folder: subset0..subset9, annotations.csv"),
    out: Path = typer.Option(..., "--out", help="output folder (an earlier run there is resumed)"),
    folds: str = typer.Option(
        "", "--folds", help="comma-separated folds to run, e.g. 0,3 (default: all ten)"
    ),
    init_from: Path | None = typer.Option(
        None,
        "--init-from",
        help="fine-tune each fold from this model (.pt) or checkpoint (default: from scratch)",
    ),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="log training metrics to CSV, not MLflow"),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="detect in float32 (no bfloat16 autocast)"),
    as_json: bool = typer.Option(False, "--json", help="print summary.json (no progress bars)"),
) -> None:
    """Train on nine LUNA16 subsets and detect on the tenth, for each fold; score the pooled candidates.

    Writes fold<k>/candidates.csv and froc.json per fold, candidates_all.csv, summary.json and summary.md.
    Finished folds are skipped: rerun the same command after an interruption. The global --config sets the
    train / model / infer / evaluate sections.
    """
    from lungcad.train.crossval import CVInterrupted, FoldResult, parse_folds, run_luna16_cv

    def report(r: FoldResult) -> None:
        if as_json:
            return
        cpm = "undefined" if r.doc["cpm"] is None else f"{r.doc['cpm']:.3f}"
        t = r.doc["timings"]
        what = (
            "already done"
            if r.skipped
            else f"train {t['train_s']:.0f} s, detect {t['s_per_scan']:.1f} s/scan"
        )
        console.print(f"fold {r.fold}: CPM {cpm} on {r.doc['n_scans']} scans ({what})", highlight=False)

    try:
        summary = run_luna16_cv(
            data,
            out,
            get_config(),
            folds=parse_folds(folds),
            init_from=init_from,
            use_mlflow=not no_mlflow,
            bf16=not no_bf16,
            show_progress=not as_json,
            on_fold=report,
        )
    except CVInterrupted as exc:
        err_console.print(f"{escape(str(exc))}: rerun the same command to go on", highlight=False)
        raise typer.Exit(130) from exc
    if as_json:
        print_json(summary.doc)
        return
    console.print(summary.files["markdown"].read_text(), highlight=False, markup=False)
    console.print(f"wrote {escape(str(summary.files['summary']))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``luna16-cv`` to ``app``."""
    app.command("luna16-cv")(luna16_cv)
