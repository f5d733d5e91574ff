"""Read-ahead of a worker: the next queued scan is read while the current one is analysed.

Reading a DICOM series is file I/O and pydicom's Python-level parsing; the network is PyTorch kernels that
release the GIL, so the two overlap (as ``lungcad detect A B C`` does with ``lungcad.infer.batch``).  When
a job has been claimed, :meth:`ReadAhead.start_next` starts one background thread that finds the analysis
the queue hands out next (the first pending message of the analysis task, in the queue's own order, whose
row is still ``queued``), links its stored series into its own staging folder ``D/tmp/job-<hex>/series``
and reads it with that analysis's detector (``Detector.load_volume``; skipped when this worker has not
loaded that detector).  When that analysis is claimed, :meth:`ReadAhead.take` hands the volume and its
staging folder to the job, which writes its result there too and removes the folder as always.

Bounds and rules:

* one read-ahead at a time and at most ONE volume held (with the running job's own: two in memory, ~140 MB
  each for a 512 x 512 x 133 series);
* the volume is keyed by (analysis id, series UID, configuration hash, the series' (SOP UID, blob digest)
  pairs); a claimed job whose key differs (the series changed, another job came first) discards it and
  reads its series itself -- a stale volume is never used;
* a read that fails is logged (``job_read_ahead_failed``, the error type only) and dropped: the job reads
  its series itself and succeeds or fails on its own;
* a volume nobody takes (the job was claimed by another worker, cancelled or deleted) is dropped with its
  staging folder at the next :meth:`take` / :meth:`forget`, or at :meth:`close` when the worker stops.

Logs (``lungcad.service.jobs``, analysis ids only): ``job_read_ahead`` (a job used its read-ahead volume),
``job_read_ahead_read`` (a volume was read, with seconds), ``job_read_ahead_dropped`` (with the reason),
``job_read_ahead_failed``.  ``ReadAhead.counts`` counts the same (tests, benchmarks).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from lungcad.log import get_logger
from lungcad.service.db.models import Analysis, AnalysisStatus
from lungcad.service.studies import series_blobs

if TYPE_CHECKING:
    from huey import Huey

    from lungcad.service.context import ServiceContext
    from lungcad.service.jobs.detectors import DetectorPool
    from lungcad.types import CTVolume

PENDING_SCAN = 20  # queue messages looked at for the next analysis (duplicates and done rows are skipped)


@dataclass(frozen=True)
class ReadKey:
    """What a read-ahead volume is valid for; ``blobs`` sorted (SOP UID, sha256) pairs of the series."""

    analysis_id: str
    series_uid: str
    config_hash: str
    blobs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, analysis_id: str, series_uid: str, config_hash: str, blobs: list[tuple[str, str]]) -> ReadKey:
        return cls(analysis_id, series_uid, config_hash, tuple(sorted(blobs)))


@dataclass(frozen=True)
class ReadVolume:
    """A volume handed to a job: ``volume`` read from ``staging / "series"``; the job owns ``staging``."""

    staging: Path
    volume: CTVolume


class _Slot:
    """The one read-ahead: reading (``done`` unset) or read (``volume`` or ``failed``)."""

    def __init__(self, key: ReadKey, staging: Path) -> None:
        self.key, self.staging = key, staging
        self.volume: CTVolume | None = None
        self.failed = False
        self.dropped = False
        self.done = threading.Event()


class ReadAhead:
    """The read-ahead of one worker process (all its job threads); thread-safe.

    Args:
        ctx: the service context (storage, database).
        huey: the queue whose pending messages say which analysis comes next.
        detectors: the worker's detectors; only a loaded one is used (``DetectorPool.peek``).
    """

    def __init__(self, ctx: ServiceContext, huey: Huey, detectors: DetectorPool) -> None:
        self.ctx, self.huey, self.detectors = ctx, huey, detectors
        self.counts: Counter[str] = Counter()  # read, hit, stale, failed, dropped, skipped
        self._lock = threading.Lock()
        self._slot: _Slot | None = None
        self._reader: threading.Thread | None = None
        self._busy = False  # a read is in progress (cleared when its volume is ready, before the thread ends)
        self._closed = False

    @property
    def log(self):  # noqa: ANN201 - a structlog logger; looked up per use (a worker configures logging later)
        return get_logger("lungcad.service.jobs")

    # -- the job's side ----------------------------------------------------------------------------------
    def take(
        self, analysis_id: str, series_uid: str, config_hash: str, blobs: list[tuple[str, str]]
    ) -> ReadVolume | None:
        """The read-ahead volume of this claimed job when its key matches (waiting for a read of this job
        still in progress: it is further along than a new read), else None; any other volume is dropped."""
        with self._lock:
            slot = self._slot
        if slot is None:
            return None
        if slot.key.analysis_id == analysis_id:
            slot.done.wait()
        elif not slot.done.is_set():
            return None  # another job's read in progress: it will be used or dropped later
        with self._lock:
            if self._slot is not slot:  # forgotten or replaced meanwhile
                return None
            self._slot = None
        key = ReadKey.of(analysis_id, series_uid, config_hash, blobs)
        if slot.volume is not None and slot.key == key:
            self.counts["hit"] += 1
            self.log.info("job_read_ahead", job=analysis_id, instances=len(key.blobs))
            return ReadVolume(slot.staging, slot.volume)
        reason = "failed" if slot.failed else "stale" if slot.key.analysis_id == analysis_id else "other job"
        self._drop(slot, reason)
        return None

    def forget(self, analysis_id: str) -> None:
        """Drop a volume (or a read in progress) of ``analysis_id``: that job ended without taking it
        (skipped, cached, failed before the read)."""
        with self._lock:
            slot = self._slot
            if slot is None or slot.key.analysis_id != analysis_id:
                return
            self._slot = None
            finished = slot.done.is_set()  # read under the lock the reader sets it under: one of us drops
        if finished:
            self._drop(slot, "not taken")
        # else: the reader sees it is no longer the slot and removes its folder itself

    def start_next(self, current_id: str) -> None:
        """Start reading the analysis after ``current_id`` in one background thread (a no-op while a
        read is in progress or after ``close``)."""
        with self._lock:
            if self._closed or self._busy:
                return
            self._busy = True
            self._reader = threading.Thread(
                target=self._read_next, args=(current_id,), name=f"read-ahead-{current_id[:8]}", daemon=True
            )
            self._reader.start()

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for a read in progress to end (tests and benchmarks: a settled state to look at)."""
        with self._lock:
            reader = self._reader
        if reader is not None:
            reader.join(timeout_s)

    def close(self) -> None:
        """Stop: wait for a read in progress, drop what is held (the worker is stopping)."""
        with self._lock:
            self._closed = True
            reader = self._reader
        if reader is not None:
            reader.join()
        with self._lock:
            slot, self._slot = self._slot, None
        if slot is not None:
            self._drop(slot, "worker stopping")

    # -- the reading thread ------------------------------------------------------------------------------
    def _read_next(self, current_id: str) -> None:
        try:
            self._read_one(current_id)
        finally:
            with self._lock:
                self._busy = False

    def _read_one(self, current_id: str) -> None:
        try:
            found = self._next(current_id)
        except Exception as exc:  # noqa: BLE001 - the database or queue: the next job reads by itself
            self.counts["failed"] += 1
            self.log.warning(
                "job_read_ahead_failed", after=current_id, stage="find", error_type=type(exc).__name__
            )
            return
        if found is None:
            return
        key, model_sha = found
        with self._lock:
            old = self._slot
            if old is not None and old.key == key:
                return  # already read (or reading): nothing to do
            detector = self.detectors.peek(model_sha, key.config_hash)
            if detector is None or self._closed:
                self.counts["skipped"] += 1
                return
            self._slot = slot = _Slot(key, self.ctx.storage.staging_dir("job"))
        if old is not None:  # at most one volume held: the newer guess replaces the older
            self._drop(old, "replaced")
        t0 = time.perf_counter()
        try:
            series_dir = self.ctx.storage.link_series(key.blobs, slot.staging / "series")
            slot.volume = detector.load_volume(series_dir, key.series_uid)
            self.counts["read"] += 1
            self.log.info(
                "job_read_ahead_read",
                job=key.analysis_id,
                after=current_id,
                seconds=round(time.perf_counter() - t0, 3),
            )
        except Exception as exc:  # noqa: BLE001 - never raised here: the job reads and fails on its own
            slot.failed = True
            slot.volume = None
            self.counts["failed"] += 1
            self.log.warning("job_read_ahead_failed", job=key.analysis_id, error_type=type(exc).__name__)
        finally:  # whatever happened, a job waiting in take() goes on
            with self._lock:
                slot.done.set()
                self._busy = False  # the next job's start_next may begin the read after it at once
                current = self._slot is slot
        if not current:  # forgotten while it was read
            self._drop(slot, "not taken")

    def _next(self, current_id: str) -> tuple[ReadKey, str] | None:
        """The key and model of the analysis the queue hands out next (None: nothing queued)."""
        from lungcad.service.jobs.queue import TASK_NAME

        now = datetime.now(UTC).replace(tzinfo=None)  # Huey's ETAs are naive UTC
        ids: list[str] = []
        for task in self.huey.pending(limit=PENDING_SCAN):
            if task.name != TASK_NAME or not task.args or (task.eta is not None and task.eta > now):
                continue  # another task, or a retry waiting for its delay (not next)
            aid = str(task.args[0])
            if aid != current_id and aid not in ids:
                ids.append(aid)
        if not ids:
            return None
        with self.ctx.sessions() as s:
            rows = {
                r.id: r
                for r in s.execute(
                    select(
                        Analysis.id, Analysis.series_uid, Analysis.model_sha256, Analysis.config_hash
                    ).where(Analysis.id.in_(ids), Analysis.status == AnalysisStatus.QUEUED)
                )
            }
            for aid in ids:  # queue order
                r = rows.get(aid)
                if r is not None:
                    blobs = series_blobs(s, r.series_uid)
                    if not blobs:
                        return None
                    return ReadKey.of(aid, r.series_uid, r.config_hash, blobs), r.model_sha256
        return None

    def _drop(self, slot: _Slot, reason: str) -> None:
        with self._lock:  # the reader and a forget may both see a finished, forgotten slot
            if slot.dropped:
                return
            slot.dropped = True
        shutil.rmtree(slot.staging, ignore_errors=True)
        slot.volume = None
        self.counts["dropped"] += 1
        self.log.info("job_read_ahead_dropped", job=slot.key.analysis_id, reason=reason)
