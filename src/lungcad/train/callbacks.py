"""Callbacks: status streaming, pause/stop control, hard-negative mining."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from lungcad.train.control import Command, ControlFile
from lungcad.train.detection_eval import DetectionSettings, mine_hard_negatives
from lungcad.train.state import TrainingState

LAST_CKPT = "last.ckpt"


class StatusCallback(L.Callback):
    """Streams ``TrainingState`` to ``status.json`` every ``every_n_steps`` steps and at every state change.

    Under DDP only global rank 0 writes.

    Throughput and the data-wait share are measured between batches: the time from the end of one
    training step to the start of the next is time spent waiting for the data loader.
    """

    def __init__(self, run_dir: Path, state: TrainingState, every_n_steps: int = 10) -> None:
        self.run_dir = Path(run_dir)
        self.state = state
        self.every = every_n_steps
        self._t_end: float | None = None
        self._t_start = 0.0
        self._wait = 0.0
        self._busy = 0.0
        self._samples = 0
        self._rank_zero = True

    def _write(self) -> None:
        if self._rank_zero:
            self.state.write(self.run_dir)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rank_zero = trainer.is_global_zero
        self.state.status = "running"
        self.state.total_steps = int(trainer.estimated_stepping_batches)
        self._write()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._t_end is not None:
            self._wait += now - self._t_end
        self._t_start = now

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self._busy += now - self._t_start
        self._t_end = now
        self._samples += int(next(iter(batch.values())).shape[0])
        if trainer.global_step % self.every == 0:
            self._update(trainer)

    def _update(self, trainer: L.Trainer) -> None:
        s = self.state
        elapsed = self._busy + self._wait
        s.epoch, s.step = int(trainer.current_epoch), int(trainer.global_step)
        s.losses = {
            k.removeprefix("train/"): round(float(v), 5)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("train/")
        }
        s.lr = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else 0.0
        s.samples_per_s = self._samples / elapsed if elapsed > 0 else 0.0
        s.data_wait_fraction = self._wait / elapsed if elapsed > 0 else 0.0
        steps_per_s = (
            (self._samples / max(1, trainer.train_dataloader.batch_size or 1)) / elapsed if elapsed else 0
        )
        s.eta_s = (s.total_steps - s.step) / steps_per_s if steps_per_s > 0 else None
        module = trainer.lightning_module
        s.best_cpm = float(getattr(module, "best_cpm", 0.0))
        s.last_cpm = float(getattr(module, "last_cpm", 0.0))
        self._write()
        self._busy = self._wait = 0.0
        self._samples = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.state.best_cpm = float(getattr(pl_module, "best_cpm", 0.0))
            self.state.last_cpm = float(getattr(pl_module, "last_cpm", 0.0))
            self._write()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.state.status == "running":
            self.state.status = "finished"
        self.state.epoch, self.state.step = int(trainer.current_epoch), int(trainer.global_step)
        self._write()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.state.status = "failed"
        self.state.message = f"{type(exception).__name__}: {exception}"
        self._write()


class ControlCallback(L.Callback):
    """After every step: on "pause" or "stop", save a consistent ``last.ckpt`` and end the run."""

    def __init__(self, run_dir: Path, status: StatusCallback) -> None:
        self.control = ControlFile(Path(run_dir))
        self.run_dir = Path(run_dir)
        self.status = status

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        command = self.control.read()
        if command is Command.RUN:
            return
        dm = trainer.datamodule
        bs = int(next(iter(batch.values())).shape[0])
        dm.items_done_in_epoch = (batch_idx + 1) * bs
        trainer.save_checkpoint(self.run_dir / LAST_CKPT)
        dm.items_done_in_epoch = 0
        self.status.state.status = "paused" if command is Command.PAUSE else "stopped"
        self.status.state.message = f"{command.value} at step {trainer.global_step}"
        self.status._update(trainer)
        trainer.should_stop = True


class EndCheckpoint(L.Callback):
    """``last.ckpt`` after every training epoch, so a crash loses at most one epoch."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.should_stop:
            trainer.save_checkpoint(self.run_dir / LAST_CKPT)


class HardNegativeCallback(L.Callback):
    """Every ``every_n_epochs`` epochs, mine the current model's top false positives on training scans.

    A rotating subset of ``n_scans`` training scans is scanned per round (full-scan inference is the
    expensive part); the mined list replaces the previous one.
    """

    def __init__(self, every_n_epochs: int, n_scans: int, per_scan: int, settings: DetectionSettings) -> None:
        self.every = every_n_epochs
        self.n_scans = n_scans
        self.per_scan = per_scan
        self.settings = settings

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every or self.per_scan == 0 or trainer.should_stop:
            return
        dm = trainer.datamodule
        scans = dm.train_scans
        rng = np.random.default_rng([dm.cfg.train.seed, trainer.current_epoch])
        chosen = sorted(rng.choice(len(scans), size=min(self.n_scans, len(scans)), replace=False).tolist())
        hard = mine_hard_negatives(pl_module.model, scans, chosen, self.settings, self.per_scan)
        dm.set_hard_negatives(hard)
        pl_module.log("train/hard_negatives", float(len(hard)))
