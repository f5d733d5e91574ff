"""Callbacks: status streaming, pause/stop/Ctrl-C control, best checkpoint and final CPM, hard negatives.

Epoch numbers shown to people (``status.json``, the progress bar, ``lungcad runs``) are 1-based: "epoch 2"
is the second epoch, the one Lightning calls ``current_epoch == 1``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from lungcad.log import get_logger, log_stage
from lungcad.train.control import Command, ControlFile
from lungcad.train.detection_eval import DetectionSettings, mine_hard_negatives
from lungcad.train.state import LAST_CKPT, TrainingState


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
        self.state.message = ""
        self.state.total_steps = int(trainer.estimated_stepping_batches)
        self.state.total_epochs = int(trainer.max_epochs or 0)
        self.state.epoch = int(trainer.current_epoch) + 1
        self._t_fit = time.perf_counter()
        get_logger("lungcad.train").info("train.start", steps=self.state.total_steps, epoch=self.state.epoch)
        self._write()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state.epoch = int(trainer.current_epoch) + 1

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
        s.epoch, s.step = int(trainer.current_epoch) + 1, int(trainer.global_step)
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
        self._copy_cpm(trainer.lightning_module)
        self._write()
        self._busy = self._wait = 0.0
        self._samples = 0

    def _copy_cpm(self, module: L.LightningModule) -> None:
        # None until a validation CPM was measured: status.json says null, never a placeholder 0
        self.state.best_cpm = getattr(module, "best_cpm", None)
        self.state.last_cpm = getattr(module, "last_cpm", None)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._copy_cpm(pl_module)
            get_logger("lungcad.train").info("train.validation", cpm=self.state.last_cpm)
            self._write()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.state.status == "running":
            self.state.status = "finished"
        # trainer.current_epoch has already counted the last epoch as done here (2 after epochs 1 and 2),
        # so the 1-based number of the last epoch trained is the one recorded during its steps
        self.state.step = int(trainer.global_step)
        self._copy_cpm(pl_module)
        log_stage("train", time.perf_counter() - self._t_fit, "lungcad.train", best_cpm=self.state.best_cpm)
        self._write()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.state.step = int(trainer.global_step)
        if isinstance(exception, KeyboardInterrupt):
            self.state.status = "interrupted"
            self.state.message = (
                f"interrupted (Ctrl-C) at step {self.state.step}; `lungcad train --resume` continues from "
                "the last epoch-end checkpoint, or from step 0 when there is none yet"
            )
        else:
            self.state.status = "failed"
            self.state.message = f"{type(exception).__name__}: {exception}"
        self._write()


class ControlCallback(L.Callback):
    """After each step: on "pause", "stop" or a first Ctrl-C, save a consistent ``last.ckpt``, end the run.

    Under DDP the ranks agree on stopping (one all-reduce of a boolean per step), so a command that one rank
    sees a step before another cannot leave the other waiting in the next gradient all-reduce.
    """

    def __init__(self, run_dir: Path, status: StatusCallback) -> None:
        self.control = ControlFile(Path(run_dir))
        self.run_dir = Path(run_dir)
        self.status = status
        self.interrupt_requested = False
        self.ended_by_command = False
        self.pending: Command | None = None  # a command seen on an epoch's last step, served at epoch end

    def request_interrupt(self) -> None:
        """Ask the run to stop at the next step boundary, as "interrupted" (the Ctrl-C handler calls it)."""
        self.interrupt_requested = True

    def _command(self, trainer: L.Trainer) -> Command | None:
        command = self.control.read()
        local = self.interrupt_requested or command is not Command.RUN
        if not trainer.strategy.reduce_boolean_decision(local, all=False):
            return None
        return Command.PAUSE if command is Command.RUN else command

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        command = self._command(trainer)
        if command is None:
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            # On an epoch's last step a mid-epoch checkpoint resumes wrongly: Lightning counts that epoch as
            # done and starts the next one, which the sampler's skip (a whole epoch of items) would then
            # empty, and the epoch-end work (validation, hard-negative mining) would never run. The run
            # ends after that work instead (``EpochEndControl``), with an end-of-epoch checkpoint.
            self.pending = command
            return
        dm = trainer.datamodule
        bs = int(next(iter(batch.values())).shape[0])
        dm.items_done_in_epoch = (batch_idx + 1) * bs
        self._end_run(trainer, command)
        dm.items_done_in_epoch = 0

    def end_pending(self, trainer: L.Trainer) -> None:
        """End the run for a command that came on an epoch's last step, now that the epoch has ended."""
        command, self.pending = self.pending, None
        # after the last epoch there is nothing left to pause: the run finishes (a "paused" run whose fit is
        # done would resume to nothing and stay "paused")
        if command is not None and not FinalValidation.fit_ends_now(trainer):
            self._end_run(trainer, command)

    def _end_run(self, trainer: L.Trainer, command: Command) -> None:
        trainer.save_checkpoint(self.run_dir / LAST_CKPT)
        state = self.status.state
        if self.interrupt_requested:
            state.status = "interrupted"
            state.message = (
                f"interrupted (Ctrl-C) at step {trainer.global_step}; `lungcad train --resume` continues"
            )
        else:
            state.status = "paused" if command is Command.PAUSE else "stopped"
            state.message = f"{command.value} at step {trainer.global_step}"
        self.ended_by_command = True
        self.status._update(trainer)
        trainer.should_stop = True


class BestCheckpoint(L.Callback):
    """``checkpoints/best.ckpt`` whenever the module measured a validation CPM above its best so far.

    Lightning's ``ModelCheckpoint`` refuses a validation epoch without its monitored key, and ``val/cpm`` is
    only logged once measured (no placeholder), so the best checkpoint follows the module's own record.

    Before any measurement nothing is saved; ``path`` is then ``None``.
    """

    def __init__(self, run_dir: Path) -> None:
        self.target = Path(run_dir) / "checkpoints" / "best.ckpt"

    @property
    def path(self) -> Path | None:
        return self.target if self.target.exists() else None

    def save_if_improved(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(pl_module, "cpm_improved", False):
            pl_module.cpm_improved = False  # type: ignore[assignment]
            trainer.save_checkpoint(self.target)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.save_if_improved(trainer, pl_module)


class FinalValidation(L.Callback):
    """When a run ends, measure the CPM of its final weights if no validation epoch did.

    Example: ``--max-steps 20`` with 100 steps per epoch ends inside epoch 1, where Lightning runs no
    validation; without this the run would end with its CPM unmeasured. A run ended by pause / stop /
    Ctrl-C is left alone (it exits quickly and continues later). Place it before ``EndCheckpoint`` so
    ``last.ckpt`` holds the measurement.
    """

    def __init__(self, control: ControlCallback, best: BestCheckpoint) -> None:
        self.control = control
        self.best = best

    @staticmethod
    def fit_ends_now(trainer: L.Trainer) -> bool:
        """At epoch end: this is the last epoch or ``max_steps`` is reached (a stop request aside)."""
        max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
        return (max_epochs is not None and trainer.current_epoch + 1 >= max_epochs) or (
            max_steps is not None and 0 < max_steps <= trainer.global_step
        )

    @staticmethod
    def _run_ends(trainer: L.Trainer) -> bool:
        return trainer.should_stop or FinalValidation.fit_ends_now(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.control.ended_by_command or not self._run_ends(trainer):
            return
        if getattr(pl_module, "cpm_step", None) == trainer.global_step:
            return  # the validation of this epoch measured these weights
        if pl_module.measure_cpm() is not None:  # type: ignore[operator]
            self.best.save_if_improved(trainer, pl_module)


class EndCheckpoint(L.Callback):
    """``last.ckpt`` after every training epoch, so a crash loses at most one epoch."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.should_stop:
            trainer.save_checkpoint(self.run_dir / LAST_CKPT)


class EpochEndControl(L.Callback):
    """Serves a pause / stop / Ctrl-C that came on an epoch's last step, once the epoch-end work is done.

    Place it after every callback that works at epoch end (``EndCheckpoint``, ``HardNegativeCallback``):
    its ``last.ckpt`` then holds what they did (the mined hard negatives), as an uninterrupted run has it.
    """

    def __init__(self, control: ControlCallback) -> None:
        self.control = control

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.control.end_pending(trainer)


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
