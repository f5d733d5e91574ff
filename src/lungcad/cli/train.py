"""``lungcad train``, ``lungcad train-control`` and ``lungcad runs``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from lungcad.cli.common import console, err_console, get_config, print_json
from lungcad.errors import InputError
from lungcad.train.control import write_command
from lungcad.train.state import LAST_CKPT, STATUS_FILE, TrainingState

if TYPE_CHECKING:
    from lungcad.train.fit import TrainResult


def _cpm(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


def _result_doc(result: TrainResult, elapsed_s: float) -> dict[str, Any]:
    s = result.state
    return {
        "run_id": s.run_id,
        "run_dir": str(result.run_dir),
        "status": s.status,
        "epoch": s.epoch,
        "total_epochs": s.total_epochs,
        "step": s.step,
        "total_steps": s.total_steps,
        "best_cpm": s.best_cpm,
        "last_cpm": s.last_cpm,
        "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        "last_checkpoint": str(result.run_dir / LAST_CKPT) if (result.run_dir / LAST_CKPT).exists() else None,
        "message": s.message,
        "notes": result.notes,
        "elapsed_s": round(elapsed_s, 1),
    }


def train(
    data: list[Path] = typer.Option(
        None,
        "--data",
        help="cohort folder (lungcad synth, LUNA16 or LIDC layout); repeat to train on several; "
        "optional with --resume",
    ),
    run_dir: Path = typer.Option(Path("runs/default"), "--run-dir", help="folder of this run"),
    resume: bool = typer.Option(
        False, "--resume", help="continue the run in --run-dir from last.ckpt (from step 0 if it has none)"
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="start from these network weights (a model .pt or a .ckpt): fine-tuning"
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="preprocessed-scan cache"),
    max_steps: int | None = typer.Option(
        None,
        "--max-steps",
        help="stop after this many optimiser steps (default: all epochs; --resume keeps the run's own "
        "limit; -1: no limit)",
    ),
    devices: int = typer.Option(1, "--devices", help="GPUs, or CPU processes (> 1 runs DDP)"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="log metrics to CSV instead of MLflow"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON (no progress bars)"),
) -> None:
    """Train the detector on a cohort (use the global --config to change the train/model sections).

    Ctrl-C stops after the current step with a consistent last.ckpt (status "interrupted"); --resume
    continues. Epochs are counted from 1, in the progress bar as in status.json.
    """
    from lungcad.train.fit import fit

    if not data and not resume:
        raise InputError("no training data", fix="pass --data COHORT_DIR (repeat it for several cohorts)")
    cfg = get_config()
    t0 = time.time()
    result = fit(
        cfg,
        data or [],
        run_dir,
        resume=resume,
        init_from=init_from,
        cache_dir=cache_dir,
        tracking_uri=tracking_uri,
        use_mlflow=not no_mlflow,
        max_steps=max_steps,
        devices=devices,
        show_progress=not as_json,
    )
    doc = _result_doc(result, time.time() - t0)
    for note in result.notes:
        err_console.print(f"note: {escape(note)}", highlight=False)
    if as_json:
        print_json(doc)
    else:
        s = result.state
        console.print(
            f"run {s.run_id}: {s.status} at epoch {s.epoch}/{s.total_epochs}, step {s.step}; "
            f"best validation CPM {_cpm(s.best_cpm)}; {doc['elapsed_s']:.0f} s",
            highlight=False,
        )
        if s.best_cpm is None:
            console.print(
                "no validation CPM was measured (run paused or stopped first, or no validation scan with a "
                "nodule); `lungcad evaluate` measures a checkpoint",
                highlight=False,
            )
        if s.message:
            console.print(escape(s.message), highlight=False)
        if result.best_checkpoint:
            console.print(f"best checkpoint: {escape(str(result.best_checkpoint))}", highlight=False)
    if result.state.status == "interrupted":
        raise typer.Exit(130)


def train_control(
    run_dir: Path = typer.Argument(..., help="run folder"),
    command: str = typer.Argument(..., help="pause, stop or run"),
    reason: str = typer.Option("", "--reason"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Pause or stop a running training at the next step (it saves a consistent last.ckpt).

    The command is consumed when the run is resumed (`lungcad train --resume`).
    """
    path = write_command(run_dir, command, reason)
    if as_json:
        print_json({"run_dir": str(run_dir), "command": command, "reason": reason, "path": str(path)})
    else:
        console.print(f"wrote {command} to {escape(str(path))}", highlight=False)


def runs(
    root: Path = typer.Argument(Path("runs"), help="folder holding run folders"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List training runs: status, epoch (1-based), steps, validation CPM ("-": not measured), and why a
    run paused, stopped or failed."""
    if not root.is_dir():
        raise InputError(
            "runs folder does not exist", path=root, fix="pass the folder given to --run-dir's parent"
        )
    states = [TrainingState.read(p.parent) for p in sorted(root.glob(f"*/{STATUS_FILE}"))]
    if as_json:
        print_json([s.__dict__ for s in states])
        return
    table = Table(title=f"runs in {root}")
    for col in ("run", "status", "epoch", "step", "best CPM", "last CPM", "samples/s", "config"):
        table.add_column(col)
    for s in states:
        table.add_row(
            s.run_id,
            s.status,
            f"{s.epoch}/{s.total_epochs}" if s.total_epochs else str(s.epoch),
            f"{s.step}/{s.total_steps}",
            "-" if s.best_cpm is None else f"{s.best_cpm:.3f}",
            "-" if s.last_cpm is None else f"{s.last_cpm:.3f}",
            f"{s.samples_per_s:.1f}",
            s.config_hash,
        )
    console.print(table)
    for s in states:  # why a run is not running (on its own line: a table column would fold it)
        if s.message and s.status != "running":
            console.print(
                f"{escape(s.run_id)} ({s.status}): {escape(s.message)}", highlight=False, soft_wrap=True
            )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(train)
    app.command("train-control")(train_control)
    app.command()(runs)
