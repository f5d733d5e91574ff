"""``lungcad train``: build data, model, callbacks and a Lightning Trainer; start, resume, track.

A run folder holds everything of one run::

    config.yaml        the full validated configuration (its hash is in every checkpoint)
    splits.json        the patient-level train / validation split (seeded, reused on resume)
    status.json        live TrainingState (status, epoch, step, losses, lr, throughput, ETA, CPM)
    control.json       pause / stop commands (see ``lungcad.train.control``)
    last.ckpt          latest consistent checkpoint (epoch end, pause or stop)
    checkpoints/       best.ckpt by validation CPM
    metrics.csv        (CSV logger) when MLflow is not used

Experiment tracking goes to MLflow with a local SQLite store (``<runs root>/mlflow.db``) by default;
``--tracking-uri`` points it at a server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from lungcad.config import LungcadConfig
from lungcad.data.cohort import load_split, read_cohorts, run_data_dirs, split_by_patient, write_split
from lungcad.data.datamodule import CohortDataModule
from lungcad.errors import InputError
from lungcad.seeding import seed_everything
from lungcad.train.callbacks import (
    LAST_CKPT,
    ControlCallback,
    EndCheckpoint,
    HardNegativeCallback,
    StatusCallback,
)
from lungcad.train.module import LungCADModule
from lungcad.train.state import TrainingState


@dataclass
class TrainResult:
    run_dir: Path
    state: TrainingState
    best_checkpoint: Path | None


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

    return CSVLogger(save_dir=str(run_dir), name="logs", version="")


def prepare_run(
    cfg: LungcadConfig, data_dirs: Sequence[Path], run_dir: Path, init_from: Path | None = None
) -> tuple[list, list]:
    """Create the run folder (config.yaml, splits.json, run.json) or check that a resumed one matches."""
    records = read_cohorts(data_dirs)
    split_file = run_dir / "splits.json"
    if split_file.exists():
        return load_split(split_file, records)
    run_dir.mkdir(parents=True, exist_ok=True)
    train, val = split_by_patient(records, cfg.train.val_fraction, cfg.train.seed)
    write_split(split_file, train, val)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=True))
    dirs = [str(Path(d).resolve()) for d in data_dirs]
    info = {
        "data_dir": dirs[0],
        "data_dirs": dirs,
        "init_from": str(init_from.resolve()) if init_from else None,
    }
    (run_dir / "run.json").write_text(json.dumps(info))
    return train, val


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
    max_steps: int = -1,
    devices: int = 1,
    strategy: str | None = None,
    show_progress: bool = True,
    extra_callbacks: list[L.Callback] | None = None,
) -> TrainResult:
    """Train (or resume) one run.

    Args:
        cfg: full configuration (``train``, ``model``, ``preprocess``, ``infer`` sections are used).
        data_dir: cohort folder, or several (``lungcad.data.cohort.read_cohorts``).
        run_dir: run folder; with ``resume`` it must hold ``last.ckpt``.
        init_from: a model file or checkpoint whose network weights start a new run (fine-tuning).
        cache_dir: preprocessed-scan cache (default ``<run_dir>/../cache``).
        max_steps: stop after this many optimiser steps (-1: the configured epochs).
        devices: CPU processes / GPUs; > 1 uses DDP (gloo on CPU).
        strategy: Lightning strategy (default "ddp" when ``devices > 1``; "ddp_spawn" inside a test runner).
        extra_callbacks: run before the control callback (tests use one to request a pause at a step).
    """
    run = Path(run_dir)
    ckpt = run / LAST_CKPT
    data_dirs = [Path(data_dir)] if isinstance(data_dir, str | Path) else [Path(d) for d in data_dir]
    if resume and init_from is not None:
        raise InputError(
            "--init-from starts a new run; a resumed run continues from its own last.ckpt",
            path=run,
            fix="drop --init-from when resuming",
        )
    if resume and not ckpt.exists():
        raise InputError("nothing to resume: no last.ckpt", path=run, fix="start the run without --resume")
    if not resume and (run / "status.json").exists():
        raise InputError(
            "run folder already holds a run", path=run, fix="pass --resume to continue it, or a new --run-dir"
        )
    if resume:
        cfg = LungcadConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    seed_everything(cfg.train.seed, deterministic=cfg.train.deterministic)
    if resume and not data_dirs:
        data_dirs = [Path(d) for d in run_data_dirs(run)]
    train_records, val_records = prepare_run(cfg, data_dirs, run, Path(init_from) if init_from else None)
    dm = CohortDataModule(
        cfg, train_records, val_records, cache_dir or run.parent / "cache", show_progress=show_progress
    )
    module = LungCADModule(cfg.model_dump(mode="json"))
    if init_from is not None:
        module.model.load_state_dict(initial_weights(Path(init_from), cfg))
    state = TrainingState.read(run) if resume else TrainingState(run_id=run.name or uuid.uuid4().hex[:8])
    state.config_hash = cfg.config_hash()
    status = StatusCallback(run, state, cfg.train.log_every_n_steps)
    t = cfg.train
    best = ModelCheckpoint(
        dirpath=run / "checkpoints",
        filename="best",
        monitor="val/cpm",
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
    )
    callbacks: list[L.Callback] = [status, *(extra_callbacks or []), ControlCallback(run, status)]
    callbacks += [EndCheckpoint(run), best]
    if val_records:
        callbacks.append(
            EarlyStopping(
                monitor="val/cpm", mode="max", patience=t.early_stop_patience * t.val_every_n_epochs
            )
        )
    callbacks.append(
        HardNegativeCallback(
            t.hard_negative_every_n_epochs, t.hard_negative_scans, t.hard_negatives_per_scan, module.detection
        )
    )
    on_gpu = torch.cuda.is_available()
    precision = t.precision if on_gpu or t.precision != "16-mixed" else "bf16-mixed"
    trainer = L.Trainer(
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
        logger=_logger(run, tracking_uri, use_mlflow),
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=show_progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(run),
    )
    logger = trainer.logger
    if logger is not None and hasattr(logger, "run_id"):
        state.mlflow_run_id = logger.run_id
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if resume else None)
    best_path = Path(best.best_model_path) if best.best_model_path else None
    return TrainResult(run, status.state, best_path)
