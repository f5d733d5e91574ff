"""One attempt of one analysis: claim the row, detect, publish the result folder, finish the row.

Never a partial result: the series is linked and the analysis written under ``D/tmp/job-<hex>``; only a
complete folder is renamed onto ``D/results/<analysis id>`` (``Storage.publish_result``, one rename), and
the staging folder is removed whatever happens.  Two attempts of one analysis (a worker presumed dead that
was only slow) publish at most once: the second rename finds the folder there and uses it.

How an attempt ends (:class:`Outcome`):

* ``done``: result published, row done with its worklist fields (or a cached copy of an identical one);
* ``failed``: a ``LungcadError`` (the input cannot be analysed: permanent, not retried, its message kept),
  the time limit (``timed out after N s``), transient errors past ``job_retries``, or a bug (``internal``);
* ``retry``: a transient error (file system, database, memory) with retries left: the row is ``queued``
  again with the error noted, and the caller schedules a message after ``job_retry_delay_s``;
* ``cancelled`` / ``gone``: the row was cancelled, deleted or taken over: nothing written;
* ``skipped``: not claimable (done, cancelled, running elsewhere, deleted): a duplicate message;
* ``abandoned``: the database refused the final write: the row stays ``running``, its heartbeat stops and
  the reaper re-queues it after ``lease_s``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from lungcad.errors import InputError, LungcadError
from lungcad.log import get_logger
from lungcad.service.db.models import Analysis, AnalysisStatus
from lungcad.service.jobs import state
from lungcad.service.jobs.cache import WORKLIST_FIELDS, find_cached, worklist_fields
from lungcad.service.jobs.state import JobCancelled, JobStopped, JobTimeout
from lungcad.service.studies import series_blobs
from lungcad.types import ScanResult

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext
    from lungcad.service.jobs.detectors import DetectorPool
    from lungcad.service.jobs.readahead import ReadAhead

__all__ = ["TRANSIENT", "Outcome", "find_cached", "run_analysis", "worker_name"]

# Errors worth another attempt: the same input may well succeed a moment later (a full or flaky disk, a
# database restart or lock timeout, memory taken by a neighbour).  Anything else that is not a
# LungcadError is a bug: re-running it would fail the same way, so it fails at once.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    MemoryError,
    OperationalError,
    InterfaceError,
    PoolTimeout,
)
_LIVE = (AnalysisStatus.QUEUED, AnalysisStatus.RUNNING, AnalysisStatus.DONE)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended (see the module docstring); ``retry_delay_s`` set for ``retry``."""

    status: str
    retry_delay_s: float | None = None


def worker_name() -> str:
    """``host:pid:thread``: which worker holds a row (no patient data, stable for one attempt)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class _Heartbeat:
    """A thread that refreshes ``heartbeat_at`` every ``heartbeat_s`` while the attempt runs.

    The network stage of a whole chest CT can take minutes without a progress call; the heartbeat is what
    tells the reaper the worker is alive.  ``lost`` is set when the row is no longer this attempt's.
    """

    def __init__(self, ctx: ServiceContext, analysis_id: str, token: str) -> None:
        self.ctx, self.analysis_id, self.token = ctx, analysis_id, token
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{analysis_id[:8]}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.ctx.settings.heartbeat_s):
            try:
                if not state.heartbeat(self.ctx, self.analysis_id, self.token):
                    self.lost.set()
                    return
            except Exception as exc:  # noqa: BLE001 - a database hiccup: the lease spans several beats
                get_logger("lungcad.service.jobs").warning(
                    "heartbeat_failed", job=self.analysis_id, error_type=type(exc).__name__
                )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Progress:
    """The ``progress(stage, fraction)`` callback of ``analyse_scan``: writes the row, enforces the limits.

    Raises (and so stops the analysis between two stages): ``JobTimeout`` past ``job_timeout_s``,
    ``JobCancelled`` / ``JobGone`` when the row is no longer this attempt's.
    """

    def __init__(self, ctx: ServiceContext, analysis_id: str, token: str, started: float, beat: _Heartbeat):
        self.ctx, self.analysis_id, self.token = ctx, analysis_id, token
        self.started, self.beat = started, beat
        self.log = get_logger("lungcad.service.jobs")

    def __call__(self, stage: str, fraction: float) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.ctx.settings.job_timeout_s:
            raise JobTimeout(self.ctx.settings.job_timeout_s)
        if self.beat.lost.is_set() or not state.set_progress(
            self.ctx, self.analysis_id, self.token, stage, fraction
        ):
            raise state.why_lost(self.ctx, self.analysis_id)
        self.log.info(
            "job_stage",
            job=self.analysis_id,
            stage=stage,
            progress=round(fraction, 3),
            seconds=round(elapsed, 3),
        )


@dataclass(frozen=True)
class _Job:
    series_uid: str
    model_sha: str
    config_hash: str
    report: bool
    attempts: int
    risk_options: str | None = None


def run_analysis(
    ctx: ServiceContext,
    analysis_id: str,
    detectors: DetectorPool,
    *,
    worker: str | None = None,
    readahead: ReadAhead | None = None,
) -> Outcome:
    """Run one attempt of analysis ``analysis_id`` (a no-op when the row is not claimable).

    ``readahead``: the worker's read-ahead (``jobs.readahead``): this job uses the volume read for it when
    its key matches, and the next queued analysis is read while this one runs.
    """
    log = get_logger("lungcad.service.jobs").bind(job=analysis_id)
    token = state.claim(ctx, analysis_id, worker or worker_name())
    if token is None:
        log.info("job_skipped", reason="not claimable")
        if readahead is not None:
            readahead.forget(analysis_id)
        return Outcome("skipped")
    started = time.monotonic()
    staging: Path | None = None
    attempts = 1
    try:
        with _Heartbeat(ctx, analysis_id, token) as beat:
            with ctx.sessions() as s:
                row = s.get(Analysis, analysis_id)
                if row is None:
                    raise state.JobGone(f"analysis {analysis_id} was deleted")
                job = _Job(
                    row.series_uid, row.model_sha256, row.config_hash, bool(row.report), row.attempts,
                    row.risk_options,
                )  # fmt: skip
                attempts = job.attempts
                source = find_cached(
                    s, job.series_uid, job.model_sha, job.config_hash, job.report,
                    storage=ctx.storage, exclude=analysis_id, risk_options=job.risk_options,
                )  # fmt: skip
                cached = None
                if source is not None and source.result_dir:
                    fields = {name: getattr(source, name) for name in WORKLIST_FIELDS} | {"cached": True}
                    cached = (source.result_dir, fields)
                blobs = series_blobs(s, job.series_uid)
            log.info("job_claimed", attempt=attempts, worker=worker or worker_name())
            if cached is not None:  # an identical analysis finished while this one waited in the queue
                return _finish(ctx, analysis_id, token, cached[0], cached[1], False, log, started)
            if not blobs:
                raise InputError("the analysed series has no stored instances", fix="upload the series again")
            ahead = readahead.take(analysis_id, job.series_uid, job.config_hash, blobs) if readahead else None
            if ahead is not None:  # read while the job before ran: same folder layout, the job owns it
                staging, source = ahead.staging, ahead.volume
            else:
                staging = ctx.storage.staging_dir("job")
                source = ctx.storage.link_series(blobs, staging / "series")
            detector = detectors.get(job.model_sha, job.config_hash)
            if readahead is not None:
                readahead.start_next(analysis_id)
            from lungcad.report.analyse import analyse_scan

            out = analyse_scan(
                detector,
                source,
                staging / "result",
                series_uid=job.series_uid,
                report=job.report,
                progress=_Progress(ctx, analysis_id, token, started, beat),
                risk=_risk_options(job.risk_options),
            )
            published = ctx.storage.publish_result(staging / "result", analysis_id)
            result = out.result if published else _read_result(ctx, analysis_id)
            fields = worklist_fields(result, detector.cfg.infer.report_threshold) | {"cached": False}
            return _finish(ctx, analysis_id, token, analysis_id, fields, published, log, started)
    except JobStopped as exc:
        kind = "cancelled" if isinstance(exc, JobCancelled) else "gone"
        log.info(f"job_{kind}", attempt=attempts, seconds=_since(started))
        return Outcome(kind)
    except JobTimeout as exc:
        return _fail(ctx, analysis_id, token, str(exc), "timeout", exc, attempts, log, started)
    except LungcadError as exc:
        message = _user_text(ctx, staging, str(exc))
        return _fail(ctx, analysis_id, token, message, "permanent", exc, attempts, log, started)
    except TRANSIENT as exc:
        note = _user_text(ctx, staging, f"{type(exc).__name__}: {exc}")
        if attempts <= ctx.settings.job_retries:
            message = f"attempt {attempts} failed ({note}); retrying"
            written = _write(log, state.requeue, ctx, analysis_id, token, message)
            if written:
                delay = ctx.settings.job_retry_delay_s
                log.warning(
                    "job_retry", attempt=attempts, error_type=type(exc).__name__, delay_s=delay,
                    seconds=_since(started),
                )  # fmt: skip
                return Outcome("retry", delay)
            return Outcome("abandoned" if written is None else "gone")
        message = f"failed after {attempts} attempts: {note}"
        return _fail(ctx, analysis_id, token, message, "transient", exc, attempts, log, started)
    except Exception as exc:  # noqa: BLE001 - a bug: fail the job with the reason, keep the worker alive
        message = _user_text(ctx, staging, f"internal error ({type(exc).__name__}: {exc})")
        return _fail(ctx, analysis_id, token, message, "internal", exc, attempts, log, started)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if readahead is not None:
            readahead.forget(analysis_id)  # read for this job but not used (cached, failed first): drop it


def _risk_options(stored: str | None):
    """The row's Brock risk options (``Analysis.risk_options``) as ``RiskOptions`` (None: none given)."""
    from lungcad.infer.risk import RiskOptions

    return RiskOptions(**json.loads(stored)) if stored else None


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _user_text(ctx: ServiceContext, staging: Path | None, text: str) -> str:
    """An error message for the row: the staging folder it names is gone in a moment and the data
    folder's location is the server's business, so they read ``the stored series`` and ``<data>``."""
    if staging is not None:
        text = text.replace(str(staging / "series"), "the stored series")
    return text.replace(str(ctx.storage.root.resolve()), "<data>").replace(str(ctx.storage.root), "<data>")


def _read_result(ctx: ServiceContext, name: str) -> ScanResult:
    doc = json.loads((ctx.storage.result_dir(name) / "result.json").read_text(encoding="utf-8"))
    return ScanResult.from_dict(doc)


def _write(log: Any, fn: Any, *args: Any) -> bool | None:
    """A final state write: True done, False the row was lost, None the database failed (the row is left
    to the reaper)."""
    try:
        return bool(fn(*args))
    except Exception as exc:  # noqa: BLE001
        log.error("job_write_failed", write=fn.__name__, error_type=type(exc).__name__)
        return None


def _finish(
    ctx: ServiceContext,
    analysis_id: str,
    token: str,
    result_dir: str,
    fields: dict[str, Any],
    published: bool,
    log: Any,
    started: float,
) -> Outcome:
    """Mark the row done; when it was lost meanwhile, drop a result folder nobody will use."""
    try:
        done = state.finish_done(ctx, analysis_id, token, result_dir, fields)
    except Exception as exc:  # noqa: BLE001
        log.error("job_write_failed", write="finish_done", error_type=type(exc).__name__)
        return Outcome("abandoned")  # the folder stays: a re-run publishes nothing and uses it
    if done:
        log.info(
            "job_done", seconds=_since(started), cached=bool(fields.get("cached")),
            n_findings=fields.get("n_findings"), lung_rads=fields.get("lung_rads"),
        )  # fmt: skip
        return Outcome("done")
    stop = state.why_lost(ctx, analysis_id)
    if published and not _in_use(ctx, result_dir):
        ctx.storage.delete_result(result_dir)
    kind = "cancelled" if isinstance(stop, JobCancelled) else "gone"
    log.info(f"job_{kind}", seconds=_since(started), stage="publish")
    return Outcome(kind)


def _in_use(ctx: ServiceContext, name: str) -> bool:
    """Whether a live row may use result folder ``name``: its own analysis (re-queued, running under
    another attempt, or done) or a cached copy."""
    with ctx.sessions() as s:
        statuses = s.scalars(
            select(Analysis.status).where(or_(Analysis.id == name, Analysis.result_dir == name))
        ).all()
    return any(status in _LIVE for status in statuses)


def _fail(
    ctx: ServiceContext,
    analysis_id: str,
    token: str,
    message: str,
    kind: str,
    exc: BaseException,
    attempts: int,
    log: Any,
    started: float,
) -> Outcome:
    fields: dict[str, Any] = {"kind": kind, "error_type": type(exc).__name__, "attempt": attempts}
    if kind == "internal":  # where the bug is (file:line function), never the message or locals: no PHI
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        if frame is not None:
            fields["where"] = f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
    log.warning("job_failed", seconds=_since(started), **fields)
    written = _write(log, state.finish_failed, ctx, analysis_id, token, message)
    return Outcome("failed" if written else "abandoned" if written is None else "gone")
