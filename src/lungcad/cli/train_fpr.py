"""``lungcad train-fpr``: train a model's false-positive-reduction stage on cohorts (``train.fpr_stage``)."""

from __future__ import annotations

from pathlib import Path

import typer

from lungcad.cli.common import console, print_json
from lungcad.errors import InputError
from lungcad.fileio import check_output_dir


def train_fpr(
    data: list[Path] = typer.Option(..., "--data", help="cohort folder (synthetic, hybrid, LUNA16); repeat"),
    out: Path = typer.Option(..., "--out", help="model file to write (.pt): the first stage + the new stage"),
    model: Path | None = typer.Option(None, "--model", help="first-stage model file [the shipped model]"),
    cache_dir: Path = typer.Option(Path("cache/fpr"), "--cache-dir", help="mined candidates, reused"),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="a scan id to leave out with every hybrid scan built on it (leave-one-out)"
    ),
    epochs: int = typer.Option(10, "--epochs", min=1, max=1000),
    steps: int = typer.Option(100, "--steps-per-epoch", min=1, max=100000),
    seed: int = typer.Option(0, "--seed", min=0),
    version: str | None = typer.Option(None, "--version", help="model version of the written file"),
    as_json: bool = typer.Option(False, "--json", help="print the stage's card as JSON"),
) -> None:
    """Mine the first stage's candidates on cohorts, train the FPR stage on them, write a model file."""
    from lungcad.train.fpr_fit import FprTrainConfig
    from lungcad.train.fpr_stage import fit_fpr_stage

    if out.suffix != ".pt":
        raise InputError("--out must name a .pt model file", path=out, fix="e.g. --out models/with-fpr.pt")
    check_output_dir(out.parent, option="--out")  # before the mining: a bad --out fails at once
    log = (lambda _msg: None) if as_json else console.print
    card = fit_fpr_stage(
        data,
        model,
        out,
        cache_dir,
        exclude=exclude,
        cfg=FprTrainConfig(epochs=epochs, steps_per_epoch=steps, seed=seed),
        model_version=version,
        log=log,
    )
    if as_json:
        print_json(card)
        return
    console.print(f"wrote {out}: validation AUC {card['val_auc']:.4f}, {card['seconds']} s")


def register(app: typer.Typer) -> None:
    app.command("train-fpr")(train_fpr)
