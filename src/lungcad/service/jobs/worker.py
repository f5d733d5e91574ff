"""``lungcad worker``: a process that runs analyses from the queue.

Start-up: open the data folder and database (migrating under a lock), remove day-old staging leftovers,
load the active model and warm it (one forward pass), reap (re-queue the jobs of workers that died), then
consume with Huey's consumer (``threads`` worker threads).  While it runs, a reaper thread repeats the reap
every ``lease_s / 2``; each job has its own heartbeat (``runner``).  SIGTERM (or SIGINT, Ctrl-C) stops it
gracefully: no new job is taken, the running ones finish; a second signal stops at once (the row is then
re-run by the next worker after ``lease_s``).

Logs (structlog, ``lungcad.service.jobs``; analysis ids, stages, counts and seconds, never patient data):
``worker_started`` / ``worker_stopping`` / ``worker_stopped``, ``detector_loaded`` / ``detector_warm``,
``job_claimed``, ``job_stage``, ``job_done``, ``job_retry``, ``job_failed``, ``job_cancelled``, ``job_gone``,
``job_skipped``, ``job_reaped``, ``job_resent``, ``reap_failed``; the read-ahead of the next scan
(``jobs.readahead``): ``job_read_ahead``, ``job_read_ahead_read``, ``job_read_ahead_dropped``,
``job_read_ahead_failed``.

For tests and scripts: ``python -m lungcad.service.jobs.worker --data-dir D`` (settings from ``LUNGCAD_*``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence

from huey.consumer import Consumer

from lungcad.errors import ConfigError, LungcadError
from lungcad.log import configure_logging, get_logger
from lungcad.service.context import open_context
from lungcad.service.delivery import start_delivery_thread as start_result_delivery_thread
from lungcad.service.jobs.queue import jobs_of, queue_kind
from lungcad.service.jobs.reaper import reap
from lungcad.service.jobs.training import start_manager_thread
from lungcad.service.settings import ServiceSettings, load_settings
from lungcad.service.webhooks import start_delivery_thread

POLL_MAX_DELAY_S = 1.0  # an idle consumer polls the SQLite queue at least this often (Redis blocks)


class _Consumer(Consumer):
    """Huey's consumer, whose signal handlers are installed only from the main thread (``run_worker`` in
    a test thread is stopped by its ``stop_event`` instead)."""

    def _set_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            super()._set_signal_handlers()


def _reaper_loop(ctx: object, stop: threading.Event, interval_s: float) -> None:
    log = get_logger("lungcad.service.jobs")
    while not stop.wait(interval_s):
        try:
            reap(ctx)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the database or queue is down: try again next round
            log.warning("reap_failed", error_type=type(exc).__name__)


def run_worker(
    settings: ServiceSettings, *, threads: int = 1, stop_event: threading.Event | None = None
) -> None:
    """Run a worker until SIGTERM / SIGINT, or until ``stop_event`` is set (then it stops gracefully).

    Raises:
        ConfigError: the settings ask for immediate mode (jobs run in the API process, a worker has nothing
            to consume) or name an unusable queue.
    """
    if settings.queue_immediate:
        raise ConfigError(
            "a worker cannot consume an immediate-mode queue (jobs already run in the API process)",
            fix="unset LUNGCAD_QUEUE_IMMEDIATE for the API and the worker",
        )
    log = get_logger("lungcad.service.jobs")
    t0 = time.perf_counter()
    ctx = open_context(settings)
    reaper_stop = threading.Event()
    reaper: threading.Thread | None = None
    try:
        huey = ctx.queue
        cleaned = ctx.storage.clean_tmp()  # staging older than a day: no live job of any worker owns it
        model_sha, config_hash = jobs_of(huey).detectors.warm_active()
        reaped = reap(ctx)
        consumer = _Consumer(
            huey,
            workers=threads,
            worker_type="thread",
            periodic=False,
            initial_delay=0.1,
            max_delay=POLL_MAX_DELAY_S,
            graceful_signal="TERM",
        )
        reaper = threading.Thread(
            target=_reaper_loop, args=(ctx, reaper_stop, settings.lease_s / 2), name="reaper", daemon=True
        )
        reaper.start()
        # the training session manager (issue 14): spawns and watches `lungcad train` processes
        start_manager_thread(ctx, reaper_stop)
        start_delivery_thread(ctx, reaper_stop)  # webhooks: due deliveries every second (issue 13)
        start_result_delivery_thread(ctx, reaper_stop)  # SEG / SR / PDF to the PACS (issue 16)
        consumer.start()
        log.info(
            "worker_started",
            threads=threads,
            queue=queue_kind(settings),
            model=model_sha[:12],
            config_hash=config_hash,
            reaped=reaped,
            cleaned=cleaned,
            seconds=round(time.perf_counter() - t0, 3),
        )
        _loop(consumer, stop_event)
        log.info("worker_stopping")
    finally:
        reaper_stop.set()
        if reaper is not None:
            reaper.join(timeout=5)
        if ctx._queue is not None and jobs_of(ctx._queue).readahead is not None:
            jobs_of(ctx._queue).readahead.close()  # type: ignore[union-attr] - its staging folder goes too
        ctx.close()
    log.info("worker_stopped", seconds=round(time.perf_counter() - t0, 3))


def _loop(consumer: Consumer, stop_event: threading.Event | None) -> None:
    """Huey's main loop (health checks, signals), plus the caller's stop event."""
    from huey.consumer import ConsumerStopped

    health = time.monotonic()
    while True:
        if stop_event is not None and stop_event.is_set():
            consumer.stop(graceful=True)
            break
        try:
            health = consumer.loop(health)
        except ConsumerStopped:
            break
    consumer.huey.notify_interrupted_tasks()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lungcad.service.jobs.worker --data-dir D [--threads N] [--log-json]``."""
    parser = argparse.ArgumentParser(prog="python -m lungcad.service.jobs.worker", description=__doc__)
    parser.add_argument("--data-dir", required=True, help="the service's data folder")
    parser.add_argument("--threads", type=int, default=None, help="jobs at once (default worker_threads)")
    parser.add_argument("--log-json", action="store_true", help="JSON log lines on stderr")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    try:
        configure_logging(json=args.log_json, level=args.log_level)
        settings = load_settings(args.data_dir)
        run_worker(settings, threads=args.threads or settings.worker_threads)
    except LungcadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
