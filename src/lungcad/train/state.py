"""Training state as a dataclass, streamed to ``status.json`` (for the CLI, the service and the dashboard)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lungcad.fileio import atomic_write_json

STATUS_FILE = "status.json"
LAST_CKPT = "last.ckpt"  # latest consistent checkpoint of a run folder


@dataclass
class TrainingState:
    """What a run is doing now. Written atomically to ``<run_dir>/status.json``.

    Attributes:
        status: created | running | paused | stopped | interrupted | finished | failed.
        epoch: 1-based number of the epoch being trained, or of the last one trained once the run ended
            (0 before the first); the progress bar shows the same number ("Epoch 2/40").
        total_epochs: the configured epochs (``train.epochs``); ``--max-steps`` may end the run earlier.
        step: optimiser steps done; ``total_steps`` what the run will do (epochs or ``--max-steps``).
        best_cpm, last_cpm: validation CPM, ``None`` (JSON null) while not measured (no validation CPM
            ran yet, or the validation scans hold no nodule): never a placeholder number.
        message: why the run is paused / stopped / interrupted, or the failure (``"failed"``) reason.
    """

    run_id: str
    status: str = "created"
    epoch: int = 0
    total_epochs: int = 0
    step: int = 0
    total_steps: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    samples_per_s: float = 0.0
    data_wait_fraction: float = 0.0
    eta_s: float | None = None
    best_cpm: float | None = None
    last_cpm: float | None = None
    config_hash: str = ""
    mlflow_run_id: str | None = None
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    message: str = ""

    def write(self, run_dir: str | Path) -> None:
        self.updated_at = time.time()
        path = Path(run_dir) / STATUS_FILE
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, run_dir: str | Path) -> TrainingState:
        data: dict[str, Any] = json.loads((Path(run_dir) / STATUS_FILE).read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
