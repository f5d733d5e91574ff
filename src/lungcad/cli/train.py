"""``lungcad train``, ``lungcad train-control`` and ``lungcad runs``."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from lungcad.cli.common import console, get_config, print_json
from lungcad.errors import InputError
from lungcad.train.control import write_command
from lungcad.train.state import STATUS_FILE, TrainingState


def train(
    data: list[Path] = typer.Option(
        None,
        "--data",
        help="cohort folder (lungcad synth, LUNA16 or LIDC layout); repeat to train on several; "
        "optional with --resume",
    ),
    run_dir: Path = typer.Option(Path("runs/default"), "--run-dir", help="folder of this run"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run-dir from last.ckpt"),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="start from these network weights (a model .pt or a .ckpt): fine-tuning"
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="preprocessed-scan cache"),
    max_steps: int = typer.Option(-1, "--max-steps", help="stop after this many steps (-1: all epochs)"),
    devices: int = typer.Option(1, "--devices", help="GPUs, or CPU processes (> 1 runs DDP)"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="log metrics to CSV instead of MLflow"),
) -> None:
    """Train the detector on a cohort (use the global --config to change the train/model sections)."""
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
    )
    s = result.state
    console.print(
        f"run {s.run_id}: {s.status} at epoch {s.epoch}, step {s.step}; best CPM {s.best_cpm or 0:.3f}; "
        f"{time.time() - t0:.0f} s"
    )
    if result.best_checkpoint:
        console.print(f"best checkpoint: {result.best_checkpoint}")


def train_control(
    run_dir: Path = typer.Argument(..., help="run folder"),
    command: str = typer.Argument(..., help="pause, stop or run"),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Pause or stop a running training at the next step (it saves a consistent last.ckpt)."""
    path = write_command(run_dir, command, reason)
    console.print(f"wrote {command} to {path}")


def runs(
    root: Path = typer.Argument(Path("runs"), help="folder holding run folders"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List training runs with their status, progress and best validation CPM."""
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
            str(s.epoch),
            f"{s.step}/{s.total_steps}",
            f"{s.best_cpm or 0:.3f}",
            f"{s.last_cpm or 0:.3f}",
            f"{s.samples_per_s:.1f}",
            s.config_hash,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(train)
    app.command("train-control")(train_control)
    app.command()(runs)
