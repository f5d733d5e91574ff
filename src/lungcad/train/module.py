"""The LightningModule: multi-task U-Net, weighted loss, AdamW with warm-up + cosine, validation CPM."""

from __future__ import annotations

import math
import random
from typing import Any

import lightning as L
import numpy as np
import torch

from lungcad.config import LungcadConfig
from lungcad.model.unet import LungUNet
from lungcad.train.detection_eval import DetectionSettings, cohort_froc
from lungcad.train.losses import MultiTaskLoss
from lungcad.types import BatchKey

CKPT_KEY = "lungcad"


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.02) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine from 1 to ``floor`` at ``total``.

    Example: warmup=100, total=1100 -> step 50: 0.505; step 100: 1.0; step 600: 0.51; step 1100: 0.02.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _numpy_state_to_ckpt() -> list[Any]:
    """The legacy global NumPy RNG state as tensors and plain numbers (safe for weights-only loading)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - legacy global state
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def _numpy_state_from_ckpt(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


class LungCADModule(L.LightningModule):
    """Training and validation of ``LungUNet`` on patch batches (keys from ``BatchKey``).

    Validation logs the patch losses every validation epoch and, every ``val_every_n_epochs`` epochs (and
    on the last one, whether ``max_epochs`` or ``max_steps`` ends it), runs full-scan detection on the
    datamodule's validation scans and logs ``val/cpm``. Between CPM epochs ``val/cpm`` repeats the last
    *measured* value so early stopping sees it (it counts validation epochs, so patience is
    ``early_stop_patience x val_every_n_epochs``). Before the first measurement nothing is logged:
    ``best_cpm`` / ``last_cpm`` stay ``None`` ("not measured"), never a placeholder 0.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = LungcadConfig.model_validate(config)
        self.model = LungUNet.from_config(self.cfg.model)
        self.loss = MultiTaskLoss.from_config(self.cfg.train)
        self.last_cpm: float | None = None
        self.best_cpm: float | None = None
        self.cpm_step: int | None = None  # global step of the weights last_cpm was measured on
        self.cpm_improved = False  # set by measure_cpm, cleared by the best-checkpoint callback
        i = self.cfg.infer
        self.detection = DetectionSettings(patch_size=i.patch_size, overlap=i.overlap, threshold=0.05)

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - UNetOutput
        return self.model(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(batch[BatchKey.IMAGE])
        loss = self.loss(out, batch)
        bs = batch[BatchKey.IMAGE].shape[0]
        self.log_dict({f"train/{k}": v for k, v in loss.terms.items()}, batch_size=bs, prog_bar=False)
        self.log("train/loss", loss.total.detach(), batch_size=bs, prog_bar=True)
        return loss.total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.model(batch[BatchKey.IMAGE])
        loss = self.loss(out, batch)
        bs = batch[BatchKey.IMAGE].shape[0]
        self.log_dict({f"val/{k}": v for k, v in loss.terms.items()}, batch_size=bs)

    def _is_cpm_epoch(self) -> bool:
        trainer = self.trainer
        if trainer.should_stop:  # a pause / stop / Ctrl-C is exiting now: its checkpoint is already saved
            return False
        every = self.cfg.train.val_every_n_epochs
        last_epoch = trainer.max_epochs is not None and self.current_epoch + 1 >= trainer.max_epochs
        # max_steps reached at this epoch's end: the run ends here too (e.g. --max-steps 300 with 100 steps
        # per epoch ends after epoch 3 although max_epochs is 40)
        last_step = trainer.max_steps is not None and 0 < trainer.max_steps <= self.global_step
        return (self.current_epoch + 1) % every == 0 or last_epoch or last_step

    def measure_cpm(self) -> float | None:
        """Full-scan detection CPM of the current weights on the validation scans (at most ``val_scans_max``).

        Updates ``last_cpm``, ``best_cpm``, ``cpm_step`` and ``cpm_improved``; logs the sensitivities at the
        FROC rates. Returns ``None`` (and changes nothing) when there is no validation scan with a nodule.
        """
        dm = getattr(self.trainer, "datamodule", None)
        scans = list(getattr(dm, "val_scans", []))[: self.cfg.train.val_scans_max]
        result = cohort_froc(self.model, scans, self.detection) if scans else None
        if result is None:
            return None
        self.cpm_step = int(self.global_step)
        self.last_cpm = float(result.cpm)
        self.cpm_improved = self.best_cpm is None or self.last_cpm > self.best_cpm
        if self.cpm_improved:
            self.best_cpm = self.last_cpm
        for rate, sens in zip(result.fp_rates, result.sensitivities, strict=True):
            self.log(f"val/sens_{rate:g}fp", sens)
        self.log("val/cpm", self.last_cpm, prog_bar=True)
        return self.last_cpm

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if self._is_cpm_epoch() and self.measure_cpm() is not None:
            return
        if self.last_cpm is not None:  # repeat the last measurement for early stopping (see class doc)
            self.log("val/cpm", self.last_cpm, prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        t = self.cfg.train
        opt = torch.optim.AdamW(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        total = t.epochs * t.steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, t.warmup_steps, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_KEY] = {
            "config": self.cfg.model_dump(mode="json"),
            "config_hash": self.cfg.config_hash(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": _numpy_state_to_ckpt(),
                "python": random.getstate(),
            },
            "best_cpm": self.best_cpm,
            "last_cpm": self.last_cpm,
            "cpm_step": self.cpm_step,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CKPT_KEY, {})
        rng = state.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            _numpy_state_from_ckpt(rng["numpy"])
            random.setstate(rng["python"])
        self.best_cpm = _optional_float(state.get("best_cpm"))
        self.last_cpm = _optional_float(state.get("last_cpm"))
        self.cpm_step = state.get("cpm_step")
