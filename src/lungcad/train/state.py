"""Training state as a dataclass, streamed to ``status.json`` (for the CLI, the service and the dashboard)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


@dataclass
class TrainingState:
    """What a run is doing now. Written atomically to ``<run_dir>/status.json``.

    ``status``: created | running | paused | stopped | finished | failed.
    """

    run_id: str
    status: str = "created"
    epoch: int = 0
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
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def read(cls, run_dir: str | Path) -> TrainingState:
        data: dict[str, Any] = json.loads((Path(run_dir) / STATUS_FILE).read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
