"""``lungcad train``: build data, model, callbacks and a Lightning Trainer; start, resume, track.

A run folder holds everything of one run::

    config.yaml        the full validated configuration (its hash is in every checkpoint)
    splits.json        the patient-level train / validation split (seeded, reused on resume)
    status.json        live TrainingState (status, epoch, step, losses, lr, throughput, ETA, CPM)
    control.json       pause / stop commands (see ``lungcad.train.control``)
    last.ckpt          latest consistent checkpoint (epoch end, pause or stop)
    run.json           cohort folders, initial weights, --max-steps (see ``lungcad.train.run_folder``)
    checkpoints/       best.ckpt by validation CPM (absent while no CPM was measured)
    logs/metrics.csv   (CSV logger) when MLflow is not used; logs/resume-N/ for each resumed part

Experiment tracking goes to MLflow with a local SQLite store (``<runs root>/mlflow.db``) by default;
``--tracking-uri`` points it at a server.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping

from lungcad.config import LungcadConfig
from lungcad.data.cohort import run_data_dirs
from lungcad.data.datamodule import CohortDataModule
from lungcad.data.records import ScanRecord
from lungcad.errors import InputError
from lungcad.seeding import seed_everything
from lungcad.train.callbacks import (
    BestCheckpoint,
    ControlCallback,
    EndCheckpoint,
    EpochEndControl,
    FinalValidation,
    HardNegativeCallback,
    StatusCallback,
)
from lungcad.train.control import consume_command, ctrl_c_pauses
from lungcad.train.module import LungCADModule
from lungcad.train.progress import EpochProgressBar
from lungcad.train.quiet import quiet_third_party
from lungcad.train.run_folder import (
    StartMode,
    prepare_run,
    read_run_config,
    run_max_steps,
    start_mode,
)
from lungcad.train.state import LAST_CKPT, TrainingState


@dataclass
class TrainResult:
    """What a ``fit`` call ended with.

    Attributes:
        run_dir: the run folder.
        state: the final ``TrainingState`` (also in ``status.json``).
        best_checkpoint: ``checkpoints/best.ckpt``, ``None`` while no validation CPM was measured.
        notes: what a user should know about how the run started or ended (printed by the CLI).
    """

    run_dir: Path
    state: TrainingState
    best_checkpoint: Path | None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Callbacks:
    status: StatusCallback
    control: ControlCallback
    best: BestCheckpoint
    all: list[L.Callback]


def _logger(run_dir: Path, tracking_uri: str | None, use_mlflow: bool) -> Any:
    if use_mlflow:
        try:
            from lightning.pytorch.loggers import MLFlowLogger
        except ImportError:  # pragma: no cover - mlflow is a dependency
            use_mlflow = False
        else:
            uri = tracking_uri or f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"
            return MLFlowLogger(experiment_name="lungcad", run_name=run_dir.name, tracking_uri=uri)
    from lightning.pytorch.loggers import CSVLogger

    # logs/metrics.csv for the first start; a resumed run writes logs/resume-1/metrics.csv and so on, since
    # the CSV logger would otherwise replace the metrics of the earlier part of the run
    version, n = "", 0
    while (folder := run_dir / "logs" / version).is_dir() and any(f.is_file() for f in folder.iterdir()):
        n += 1
        version = f"resume-{n}"
    return CSVLogger(save_dir=str(run_dir), name="logs", version=version)


def initial_weights(path: Path, cfg: LungcadConfig) -> dict[str, torch.Tensor]:
    """The network weights of a lungcad model file or a training checkpoint, checked against ``cfg.model``.

    Fine-tuning starts from them; the optimiser, schedule and step count start fresh.

    Raises:
        InputError: the file is missing or unreadable, or its architecture differs from ``cfg.model``.
    """
    from lungcad.model.bundle import bundle_from_checkpoint, load_bundle

    if not path.is_file():
        raise InputError("initial weights not found", path=path, fix="pass a .pt model file or a .ckpt")
    bundle = bundle_from_checkpoint(path, "init", "0") if path.suffix == ".ckpt" else load_bundle(path)
    model_cfg = bundle.config.model.model_dump(mode="json")
    ours = cfg.model.model_dump(mode="json")
    diff = sorted(k for k in ours if ours.get(k) != model_cfg.get(k))
    if diff:
        k = diff[0]
        raise InputError(
            f"initial weights have another architecture: model.{k} is {model_cfg.get(k)!r} there, "
            f"{ours.get(k)!r} here",
            path=path,
            fix=f"set model.{k}: {model_cfg.get(k)!r} in the training config, or train from scratch",
        )
    return bundle.model.state_dict()


def _as_paths(data_dir: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(data_dir)] if isinstance(data_dir, str | Path) else [Path(d) for d in data_dir]


def _build_module(cfg: LungcadConfig, init_from: Path | None) -> LungCADModule:
    module = LungCADModule(cfg.model_dump(mode="json"))
    if init_from is not None:
        module.model.load_state_dict(initial_weights(init_from, cfg))
    return module


def _initial_state(run: Path, cfg: LungcadConfig, mode: StartMode) -> TrainingState:
    state = (
        TrainingState.read(run)
        if mode is StartMode.RESUME
        else TrainingState(run_id=run.name or uuid.uuid4().hex[:8])
    )
    state.config_hash = cfg.config_hash()
    return state


def _build_callbacks(
    run: Path,
    cfg: LungcadConfig,
    state: TrainingState,
    module: LungCADModule,
    val_records: Sequence[ScanRecord],
    extra: Sequence[L.Callback],
    show_progress: bool,
) -> _Callbacks:
    """Status first (it sees every step), then the caller's, control, final CPM, checkpoints, mining.

    ``FinalValidation`` precedes ``EndCheckpoint`` so that ``last.ckpt`` holds the final measurement.
    """
    t = cfg.train
    status = StatusCallback(run, state, t.log_every_n_steps)
    control = ControlCallback(run, status)
    best = BestCheckpoint(run)
    callbacks: list[L.Callback] = [status, *extra, control, FinalValidation(control, best)]
    callbacks += [EndCheckpoint(run), best]
    if val_records:
        # strict=False: epochs before the first CPM measurement log no val/cpm (no placeholder), and
        # early stopping then has nothing to judge yet
        patience = t.early_stop_patience * t.val_every_n_epochs
        callbacks.append(
            EarlyStopping(
                monitor="val/cpm", mode="max", patience=patience, strict=False, check_on_train_epoch_end=False
            )
        )
    callbacks.append(
        HardNegativeCallback(
            t.hard_negative_every_n_epochs, t.hard_negative_scans, t.hard_negatives_per_scan, module.detection
        )
    )
    callbacks.append(EpochEndControl(control))  # after all epoch-end work: a pause on a last step ends here
    if show_progress:
        callbacks.append(EpochProgressBar())
    return _Callbacks(status, control, best, callbacks)


def _build_trainer(
    cfg: LungcadConfig,
    run: Path,
    callbacks: list[L.Callback],
    *,
    max_steps: int,
    devices: int,
    strategy: str | None,
    logger: Any,
    show_progress: bool,
) -> L.Trainer:
    t = cfg.train
    on_gpu = torch.cuda.is_available()
    precision = t.precision if on_gpu or t.precision != "16-mixed" else "bf16-mixed"
    return L.Trainer(
        max_epochs=t.epochs,
        max_steps=max_steps,
        accelerator="gpu" if on_gpu else "cpu",
        devices=devices,
        strategy=strategy or ("ddp" if devices > 1 else "auto"),
        use_distributed_sampler=False,  # ResumableSampler shards by rank itself
        precision=precision,
        gradient_clip_val=t.grad_clip,
        deterministic=t.deterministic,
        callbacks=callbacks,
        logger=logger,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=show_progress,
        enable_checkpointing=False,  # BestCheckpoint / EndCheckpoint / ControlCallback write checkpoints
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(run),
    )


def _run_trainer(
    trainer: L.Trainer,
    module: LungCADModule,
    dm: CohortDataModule,
    parts: _Callbacks,
    ckpt_path: Path | None,
) -> None:
    """``trainer.fit`` with Ctrl-C as a pause; a second Ctrl-C leaves as KeyboardInterrupt.

    Lightning turns a KeyboardInterrupt into ``sys.exit(1)`` after telling the callbacks (status.json then
    says "interrupted"); it is turned back into KeyboardInterrupt so the CLI exits with 130.
    """
    logger = trainer.logger
    if logger is not None and hasattr(logger, "run_id"):
        parts.status.state.mlflow_run_id = logger.run_id
    try:
        with ctrl_c_pauses(parts.control.request_interrupt):
            trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except SystemExit as exc:
        if parts.status.state.status == "interrupted":
            raise KeyboardInterrupt from exc
        raise


def fit(
    cfg: LungcadConfig,
    data_dir: str | Path | Sequence[str | Path],
    run_dir: str | Path,
    *,
    resume: bool = False,
    init_from: str | Path | None = None,
    cache_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    use_mlflow: bool = True,
    max_steps: int | None = None,
    devices: int = 1,
    strategy: str | None = None,
    show_progress: bool = True,
    extra_callbacks: list[L.Callback] | None = None,
) -> TrainResult:
    """Train (or resume) one run.

    Args:
        cfg: full configuration (``train``, ``model``, ``preprocess``, ``infer`` sections are used); a
            resumed run uses its own ``config.yaml`` instead.
        data_dir: cohort folder, or several (``lungcad.data.cohort.read_cohorts``); a resumed run may
            pass none (its ``run.json`` names them).
        run_dir: run folder. With ``resume`` it continues from ``last.ckpt``, or from step 0 (same config
            and split) when the run ended before its first checkpoint.
        init_from: a model file or checkpoint whose network weights start a new run (fine-tuning).
        cache_dir: preprocessed-scan cache (default ``<run_dir>/../cache``).
        max_steps: stop after this many optimiser steps; ``None``: a new run trains the configured
            epochs, a resumed one keeps the limit it was started with (``run.json``); -1: no limit.
        devices: CPU processes / GPUs; > 1 uses DDP (gloo on CPU).
        strategy: Lightning strategy (default "ddp" when ``devices > 1``; "ddp_spawn" inside a test runner).
        extra_callbacks: run before the control callback (tests use one to request a pause at a step).

    Raises:
        InputError: see ``lungcad.train.run_folder.start_mode``; bad initial weights.
        KeyboardInterrupt: a second Ctrl-C (the first one pauses: status "interrupted").
    """
    run = Path(run_dir)
    data_dirs = _as_paths(data_dir)
    init = Path(init_from) if init_from is not None else None
    mode = start_mode(run, resume, init)
    steps = run_max_steps(run, max_steps, mode)
    notes: list[str] = []
    if mode is not StartMode.NEW:
        cfg = read_run_config(run)
        data_dirs = data_dirs or [Path(d) for d in run_data_dirs(run)]
    if mode is StartMode.RESTART:
        notes.append(f"{run} has no last.ckpt yet (it ended before its first checkpoint): starting at step 0")
    if (consumed := consume_command(run)) is not None:
        notes.append(f"a pending {consumed.value!r} command in control.json was cleared")
    seed_everything(cfg.train.seed, deterministic=cfg.train.deterministic)
    train_records, val_records = prepare_run(cfg, data_dirs, run, init, steps)
    dm = CohortDataModule(
        cfg, train_records, val_records, cache_dir or run.parent / "cache", show_progress=show_progress
    )
    module = _build_module(cfg, init)
    state = _initial_state(run, cfg, mode)
    parts = _build_callbacks(run, cfg, state, module, val_records, extra_callbacks or [], show_progress)
    with quiet_third_party():
        trainer = _build_trainer(
            cfg,
            run,
            parts.all,
            max_steps=steps,
            devices=devices,
            strategy=strategy,
            logger=_logger(run, tracking_uri, use_mlflow),
            show_progress=show_progress,
        )
        _run_trainer(trainer, module, dm, parts, run / LAST_CKPT if mode is StartMode.RESUME else None)
    return TrainResult(run, parts.status.state, parts.best.path, notes)
