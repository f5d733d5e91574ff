"""Loaded detectors of one worker process: one per (model file, configuration), the 2 used last.

Loading a model file takes about a second and the first forward pass pays for allocator and kernel set-up
(on CPU several seconds on the bundled slab); a worker pays both once at start (:meth:`DetectorPool.warm`)
instead of in the first job.  An analysis may name another model than the active one (``POST /analyses
{"model": ...}``) or have been queued under another configuration: that detector is loaded on first use
and kept, and the one used longest ago is dropped when a third is needed (a model is ~100 MB in memory).

The configuration of an analysis is the one recorded under its ``config_hash`` (``configs`` table), so a
worker started with another configuration file than the API still runs what the analysis was created with.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from lungcad.config import LungcadConfig
from lungcad.errors import InputError
from lungcad.log import get_logger
from lungcad.service import models_registry
from lungcad.service.db.models import ConfigVersion, ModelFile

if TYPE_CHECKING:
    from lungcad.infer.detector import Detector
    from lungcad.service.context import ServiceContext

DEFAULT_SIZE = 2
WARM_SIDE = 16  # voxels: smaller than one window, padded by the sliding window to exactly one window


def warm(detector: Detector) -> float:
    """One forward pass over one window of zeros (the job's own window size and precision); seconds."""
    from lungcad.infer.sliding import predict_volume

    i = detector.cfg.infer
    t0 = time.perf_counter()
    predict_volume(
        detector.predictor,
        np.zeros((WARM_SIDE,) * 3, dtype=np.float32),
        i.patch_size,
        i.overlap,
        i.blend,
        bf16=detector.bf16,
    )
    return time.perf_counter() - t0


class DetectorPool:
    """Detectors by (model sha256, config hash), least recently used dropped past ``size``; thread-safe."""

    def __init__(self, ctx: ServiceContext, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self.ctx = ctx
        self.size = size
        self._items: OrderedDict[tuple[str, str], Detector] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many detectors this pool has loaded (tests: "loaded once")

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._items)

    def peek(self, model_sha: str, config_hash: str | None = None) -> Detector | None:
        """The detector when it is loaded, else None; never loads and leaves the use order as it is (the
        read-ahead of the next job asks without making that detector the last used)."""
        with self._lock:
            return self._items.get((model_sha, config_hash or ""))

    def get(self, model_sha: str, config_hash: str | None = None) -> Detector:
        """The detector for a model and a recorded configuration (None: the model's effective one)."""
        key = (model_sha, config_hash or "")
        with self._lock:
            # loading under the lock: two threads asking for the same new model load it once
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            detector = self._load(model_sha, config_hash)
            self._items[key] = detector
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return detector

    def warm_active(self) -> tuple[str, str]:
        """Load and warm the active model under the service's configuration; returns its key."""
        with self.ctx.sessions() as s:
            model = models_registry.active_model(s)
            if model is None:
                raise LookupError("no active model")
        config_hash = models_registry.record_config(
            self.ctx, models_registry.effective_config(self.ctx, model)
        )
        detector = self.get(model.sha256, config_hash)
        seconds = warm(detector)
        get_logger("lungcad.service.jobs").info(
            "detector_warm", model=model.sha256[:12], config_hash=config_hash, seconds=round(seconds, 3)
        )
        return model.sha256, config_hash

    def _load(self, model_sha: str, config_hash: str | None) -> Detector:
        from lungcad.infer.detector import Detector

        t0 = time.perf_counter()
        with self.ctx.sessions() as s:
            model = s.get(ModelFile, model_sha)
            if model is None:  # permanent: re-running the analysis cannot bring the model back
                raise InputError(
                    f"the analysis names model {model_sha[:12]}..., which is not registered",
                    fix="upload it with POST /api/v1/models, or analyse with the active model",
                )
            recorded = s.get(ConfigVersion, config_hash) if config_hash else None
            cfg = (
                LungcadConfig.model_validate(recorded.config)
                if recorded is not None
                else models_registry.effective_config(self.ctx, model)
            )
        detector = Detector.load(models_registry.model_path(self.ctx, model_sha), config=cfg)
        self.loads += 1
        get_logger("lungcad.service.jobs").info(
            "detector_loaded",
            model=model_sha[:12],
            config_hash=config_hash,
            seconds=round(time.perf_counter() - t0, 3),
        )
        return detector
