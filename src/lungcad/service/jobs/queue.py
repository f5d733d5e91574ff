"""The Huey queue of one service: SQLite-backed on one machine, Redis past one; the analysis task on it.

A message carries only an analysis id.  The ``analyses`` row holds the job's state, so the queue may lose a
message (the reaper re-sends it) or deliver one twice (the second claim is a no-op): results and retries
are decided by the row, not by Huey.  That is why the task does its own retries (``attempts`` on the row
counts every run, including runs of workers that died) and Huey's result store is off.

``make_queue`` builds a new Huey instance with the task registered on it -- nothing at import time, so a
test, the API and each worker process get their own.  ``settings.queue_immediate`` runs tasks in the
caller (Huey's immediate mode, in-memory storage): a TestClient's ``POST /analyses`` then returns after
the analysis ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huey import Huey, RedisHuey, SqliteHuey

from lungcad.errors import ConfigError
from lungcad.log import get_logger
from lungcad.service.jobs.detectors import DetectorPool

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext
    from lungcad.service.jobs.readahead import ReadAhead
    from lungcad.service.settings import ServiceSettings

TASK_NAME = "lungcad.analyse"
SQLITE_TIMEOUT_S = 30  # the API and every worker of the machine write the same queue file


@dataclass
class QueueJobs:
    """What ``make_queue`` registered on a Huey instance (``jobs_of(huey)``)."""

    analyse: Any  # huey.api.TaskWrapper: ``analyse(analysis_id)`` enqueues
    detectors: DetectorPool  # the detectors this process loaded for the queue's tasks
    readahead: ReadAhead | None = None  # the next scan read during this one (settings.worker_read_ahead)


def queue_kind(settings: ServiceSettings) -> str:
    """``redis`` or ``sqlite`` (for logs and health output)."""
    return "redis" if settings.queue_url else "sqlite"


def make_queue(ctx: ServiceContext) -> Huey:
    """A Huey instance for ``ctx``'s settings, with the analysis task registered.

    Raises:
        ConfigError: ``queue_url`` is set but is not a redis-py URL.
    """
    s = ctx.settings
    common: dict[str, Any] = {"name": s.queue_name, "results": False, "immediate": s.queue_immediate}
    if s.queue_url:
        if not s.uses_redis:
            raise ConfigError(
                f"queue_url must be a Redis URL, got {s.queue_url.split('://')[0]}://...",
                fix="set LUNGCAD_QUEUE_URL=redis://host:6379/0 (or leave it empty for the SQLite queue)",
            )
        huey: Huey = RedisHuey(url=s.queue_url, **common)
    else:
        huey = SqliteHuey(filename=str(s.queue_file), timeout=SQLITE_TIMEOUT_S, **common)
    detectors = DetectorPool(ctx)
    readahead = None
    if s.worker_read_ahead and not s.queue_immediate:  # immediate mode: no next message to read ahead
        from lungcad.service.jobs.readahead import ReadAhead

        readahead = ReadAhead(ctx, huey, detectors)

    @huey.task(name=TASK_NAME)
    def analyse(analysis_id: str) -> None:
        from lungcad.service.jobs.runner import run_analysis

        outcome = run_analysis(ctx, analysis_id, detectors, readahead=readahead)
        if outcome.retry_delay_s is not None:
            send_analysis(huey, analysis_id, outcome.retry_delay_s)

    huey.lungcad_jobs = QueueJobs(analyse=analyse, detectors=detectors, readahead=readahead)  # type: ignore[attr-defined]
    return huey


def jobs_of(huey: Huey) -> QueueJobs:
    """The tasks and detectors ``make_queue`` put on ``huey``."""
    jobs = getattr(huey, "lungcad_jobs", None)
    if not isinstance(jobs, QueueJobs):
        raise TypeError("not a queue made by lungcad.service.jobs.queue.make_queue")
    return jobs


def send_analysis(huey: Huey, analysis_id: str, delay_s: float = 0.0) -> None:
    """Enqueue the analysis task of ``huey`` for ``analysis_id``, now or after ``delay_s`` seconds.

    In immediate mode nothing would ever run a scheduled message (there is no consumer), so the caller
    waits the delay and runs it.  A queue that is down loses the message: the row stays ``queued`` and the
    reaper sends it again.
    """
    task = jobs_of(huey).analyse
    if huey.immediate:
        time.sleep(delay_s)
        task(analysis_id)
        return
    try:
        if delay_s > 0:
            task.schedule(args=(analysis_id,), delay=delay_s)
        else:
            task(analysis_id)
    except Exception as exc:  # noqa: BLE001 - the reaper recovers a lost message
        get_logger("lungcad.service.jobs").error(
            "enqueue_failed", job=analysis_id, error_type=type(exc).__name__
        )


def enqueue_analysis(ctx: ServiceContext, analysis_id: str, *, delay_s: float = 0.0) -> None:
    """Queue analysis ``analysis_id`` (a row already ``queued``); in immediate mode it runs now.

    A queue that is unreachable is logged, not raised: the row stays ``queued`` and a worker's reaper sends
    the message once the queue is back.
    """
    send_analysis(ctx.queue, analysis_id, delay_s)
