"""Lightning DataModule over a cohort: cached scans, patient-level splits, training and validation patches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from rich.progress import Progress
from torch.utils.data import DataLoader

from lungcad.config import LungcadConfig
from lungcad.data.cache import CachedScan, ScanCache
from lungcad.data.dataset import PatchDataset
from lungcad.data.records import ScanRecord
from lungcad.data.resumable import ResumableSampler


def cache_scans(
    cache: ScanCache, records: Sequence[ScanRecord], label: str, show: bool = True
) -> list[CachedScan]:
    """Preprocess (once) and open every record, with a progress bar."""
    out = []
    with Progress(disable=not show, transient=True) as progress:
        task = progress.add_task(f"caching {label} scans", total=len(records))
        for rec in records:
            out.append(cache.open(rec))
            progress.advance(task)
    return out


class CohortDataModule(L.LightningDataModule):
    """Training and validation patches from cached scans.

    Its ``state_dict`` (saved in every checkpoint) holds the hard negatives mined so far and, for a
    checkpoint taken mid-epoch, how many items of that epoch were already trained on.
    """

    def __init__(
        self,
        cfg: LungcadConfig,
        train_records: Sequence[ScanRecord],
        val_records: Sequence[ScanRecord],
        cache_dir: str | Path,
        show_progress: bool = True,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_records = list(train_records)
        self.val_records = list(val_records)
        self.cache = ScanCache(cache_dir, cfg.preprocess)
        self.show_progress = show_progress
        self.train_scans: list[CachedScan] = []
        self.val_scans: list[CachedScan] = []
        self.train_set: PatchDataset | None = None
        self.val_set: PatchDataset | None = None
        self.items_done_in_epoch = 0
        self._resume_items = 0
        self._hard: list[tuple[int, tuple[int, int, int]]] = []

    def prepare_data(self) -> None:
        """Preprocess every scan once (Lightning runs this on one process per machine)."""
        cache_scans(self.cache, self.train_records + self.val_records, "all", self.show_progress)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        t = self.cfg.train
        self.train_scans = cache_scans(self.cache, self.train_records, "training", self.show_progress)
        self.val_scans = cache_scans(self.cache, self.val_records, "validation", self.show_progress)
        length = t.steps_per_epoch * t.batch_size
        self.train_set = PatchDataset(
            self.train_scans,
            t.patch_size,
            length,
            positive_fraction=t.positive_fraction,
            seed=t.seed,
            hard_fraction=t.hard_negative_fraction,
        )
        self.train_set.sampler.set_hard_negatives(self._hard)
        if self.val_scans:
            self.val_set = PatchDataset(
                self.val_scans,
                t.patch_size,
                t.val_patches,
                positive_fraction=0.5,
                augment=False,
                seed=t.seed + 1,
            )

    def set_hard_negatives(self, hard: list[tuple[int, tuple[int, int, int]]]) -> None:
        self._hard = list(hard)
        if self.train_set is not None:
            self.train_set.sampler.set_hard_negatives(self._hard)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() first"  # Lightning calls setup before this
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = ResumableSampler(len(self.train_set), rank, world)
        if self._resume_items:
            sampler.skip(self._resume_items)
            self._resume_items = 0
        workers = self.cfg.train.num_workers
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.train.batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=False,
            drop_last=True,
        )

    def val_dataloader(self) -> DataLoader | list[Any]:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.cfg.train.batch_size, num_workers=0)

    def state_dict(self) -> dict[str, Any]:
        return {"items_done_in_epoch": self.items_done_in_epoch, "hard_negatives": self._hard}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume_items = int(state.get("items_done_in_epoch", 0))
        self.set_hard_negatives(
            [(int(i), tuple(int(v) for v in c)) for i, c in state.get("hard_negatives", [])]
        )
