"""The run folder: how a run starts (new, resumed, restarted), what ``run.json`` records, the split.

``run.json`` holds what a resumed run must reuse and the config does not say::

    {"data_dir": ..., "data_dirs": [...], "init_from": null | path, "max_steps": null | int}

``max_steps`` is the ``--max-steps`` the run was last started with (``null``: the configured epochs); a
resume without ``--max-steps`` keeps it, one with ``--max-steps`` replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from lungcad.config import LungcadConfig
from lungcad.data.cohort import load_split, read_cohorts, split_by_patient, write_split
from lungcad.data.records import ScanRecord
from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json, atomic_write_text
from lungcad.train.state import LAST_CKPT, STATUS_FILE

RUN_INFO = "run.json"
RUN_CONFIG = "config.yaml"
RUN_SPLIT = "splits.json"


class StartMode(StrEnum):
    NEW = "new"  # an empty or new folder
    RESUME = "resume"  # continue from last.ckpt
    RESTART = "restart"  # --resume of a run that ended before its first checkpoint: step 0, same config


def start_mode(run: Path, resume: bool, init_from: Path | None) -> StartMode:
    """How ``lungcad train`` starts in ``run``; refuses the combinations that cannot work.

    Raises:
        InputError: --resume with --init-from; --resume of a folder without a run; a new run in a folder
            that already holds one.
    """
    if resume and init_from is not None:
        raise InputError(
            "--init-from starts a new run; a resumed run continues from its own last.ckpt",
            path=run,
            fix="drop --init-from when resuming",
        )
    if resume:
        if (run / LAST_CKPT).exists():
            return StartMode.RESUME
        if (run / RUN_CONFIG).exists() and (run / RUN_SPLIT).exists():
            # e.g. Ctrl-C (or a crash) in epoch 1, before the first epoch-end checkpoint
            return StartMode.RESTART
        raise InputError("nothing to resume: no last.ckpt", path=run, fix="start the run without --resume")
    if (run / STATUS_FILE).exists():
        raise InputError(
            "run folder already holds a run",
            path=run,
            fix="pass --resume to continue it (from step 0 if it stopped before its first checkpoint), "
            "or a new --run-dir",
        )
    return StartMode.NEW


def read_run_config(run: Path) -> LungcadConfig:
    """The configuration a run was started with (``config.yaml``)."""
    return LungcadConfig.model_validate(yaml.safe_load((run / RUN_CONFIG).read_text()))


def read_run_info(run: Path) -> dict[str, Any]:
    """``run.json`` (empty for a folder without one)."""
    path = run / RUN_INFO
    return json.loads(path.read_text()) if path.exists() else {}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    atomic_write_json(path, doc)


def run_max_steps(run: Path, given: int | None, mode: StartMode) -> int:
    """The step limit of this start: ``given``, else (resumed runs) the one in ``run.json``; -1 for none.

    Example: ``train --max-steps 500``, paused at step 200, ``train --resume`` stops at 500, not at the end
    of the configured epochs.

    Raises:
        InputError: ``given`` is 0 or below -1.
    """
    if given is not None:
        if given == 0 or given < -1:
            raise InputError(
                f"--max-steps must be >= 1 (or -1 for no limit), got {given}",
                fix="pass a positive number of optimiser steps, or leave --max-steps out",
            )
        return given
    if mode is StartMode.NEW:
        return -1
    recorded = read_run_info(run).get("max_steps")
    return -1 if recorded is None else int(recorded)


def record_max_steps(run: Path, max_steps: int) -> None:
    info = read_run_info(run)
    info["max_steps"] = max_steps if max_steps > 0 else None
    _write_json(run / RUN_INFO, info)


def prepare_run(
    cfg: LungcadConfig,
    data_dirs: Sequence[Path],
    run_dir: Path,
    init_from: Path | None = None,
    max_steps: int = -1,
) -> tuple[list[ScanRecord], list[ScanRecord]]:
    """Create the run folder (config.yaml, splits.json, run.json) or reuse the split of an existing one.

    Returns:
        The training and validation records.
    """
    records = read_cohorts(data_dirs)
    split_file = run_dir / RUN_SPLIT
    if split_file.exists():
        train, val = load_split(split_file, records)
        record_max_steps(run_dir, max_steps)
        return train, val
    run_dir.mkdir(parents=True, exist_ok=True)
    train, val = split_by_patient(records, cfg.train.val_fraction, cfg.train.seed)
    write_split(split_file, train, val)
    atomic_write_text(run_dir / RUN_CONFIG, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=True))
    dirs = [str(Path(d).resolve()) for d in data_dirs]
    info = {
        "data_dir": dirs[0],
        "data_dirs": dirs,
        "init_from": str(init_from.resolve()) if init_from else None,
        "max_steps": max_steps if max_steps > 0 else None,
    }
    _write_json(run_dir / RUN_INFO, info)
    return train, val


def run_of_checkpoint(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint belongs to (``RUN/last.ckpt``, ``RUN/checkpoints/best.ckpt``), if any."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / RUN_INFO).exists() and (folder / RUN_SPLIT).exists():
            return folder
    return None


def checkpoint_step(checkpoint: Path) -> int:
    """The optimiser step a Lightning checkpoint was taken at (0 when it does not say)."""
    import torch

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    return int(ckpt.get("global_step", 0))


def training_scan_ids(run: Path) -> set[str]:
    """The scan ids of a run's training split (``splits.json``)."""
    return set(json.loads((run / RUN_SPLIT).read_text())["train"])
