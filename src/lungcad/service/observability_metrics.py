"""Prometheus metrics of the service: one ``CollectorRegistry`` per app (several apps live in one test
process; the global default registry would mix them), exposed by ``GET /metrics``.

What is measured where:

* HTTP requests (``lungcad_http_request_duration_seconds{method,route,status}``, a histogram whose
  ``_count`` is the request counter; ``lungcad_http_requests_in_flight``): in this process, by the request
  middleware.  ``route`` is the route *template* (``/api/v1/studies/{study_id}``), never the raw path, so
  no id reaches a label and the number of series stays bounded.
* Queue depth, analyses per status, failures, the active model, free disk, readiness: read at scrape time
  (a custom collector) from the database and the data folder -- the source of truth that every API and
  worker process shares, so any API replica reports the same numbers.
* Job durations: workers are other processes, so their timings are taken from what they store.  At each
  scrape the analyses finished since the last one are fed once each into real histograms:
  ``lungcad_job_duration_seconds`` (``finished_at - started_at`` of a computed, i.e. not cached, done
  analysis), ``lungcad_job_stage_duration_seconds{stage}`` and ``lungcad_model_inference_seconds`` (the
  ``timings_s`` of its ``result.json``: ``load``, ``preprocess``, ``network`` = inference,
  ``postprocess``).  A result folder never changes once published, so each ``result.json`` is read once.
  The histograms are cumulative per API process (a restart is a counter reset to Prometheus) and start
  with the last ``BACKFILL`` finished analyses.  Several API replicas report the same jobs: aggregate
  them with ``max``, not ``sum``.

No label carries an id, a path or patient data (model id and version are names of the software).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from sqlalchemy import func, select

from lungcad import __version__
from lungcad.log import get_logger
from lungcad.service.db.models import Analysis, AnalysisStatus, ModelFile, ResultDelivery
from lungcad.service.db.session import as_utc

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

# request latency buckets (s): JSON reads take milliseconds, uploads of a whole CT study minutes
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
# job / stage buckets (s): a stage takes from a tenth of a second to minutes on a CPU
JOB_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
BACKFILL = 200  # finished analyses fed in at the first scrape of a process
MAX_PER_SCRAPE = 1000  # bounds one scrape's work after a long pause
SLACK_S = 120.0  # analyses committed late (clock skew between workers, slow commits) are still seen once
MAX_STAGES = 32  # stage label values accepted (bounded cardinality even if result.json changes)
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

ContextFn = Callable[[], "ServiceContext"]
ReadinessFn = Callable[[], dict[str, Any]]


class ServiceMetrics:
    """The registry and the in-process metrics of one app."""

    def __init__(self, get_ctx: ContextFn, readiness: ReadinessFn | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_seconds = Histogram(
            "lungcad_http_request_duration_seconds",
            "HTTP request latency by route template, method and status code, seconds",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "lungcad_http_requests_in_flight", "HTTP requests being served now", registry=r
        )
        self.job_seconds = Histogram(
            "lungcad_job_duration_seconds",
            "Wall time of computed (not cached) analyses, started to finished, seconds",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "lungcad_job_stage_duration_seconds",
            "Seconds per pipeline stage of computed analyses (result.json timings_s)",
            ["stage"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "lungcad_model_inference_seconds",
            "Seconds of the network stage of computed analyses",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        # one child per (method, route, status): labels() takes a lock and builds a key on every call
        self._children: dict[tuple[str, str, int], Any] = {}
        self.jobs = JobHistory(self)
        self._get_ctx = get_ctx
        r.register(StateCollector(get_ctx, readiness))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            label = method if method in METHODS else "OTHER"
            child = self._children[key] = self.http_seconds.labels(label, route, str(status))
        child.observe(seconds)

    def refresh(self) -> None:
        """Feed newly finished analyses into the job histograms (called before each scrape)."""
        try:
            self.jobs.ingest(self._get_ctx())
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even with the database down
            get_logger("lungcad.service").warning("metrics_jobs_failed", error=type(exc).__name__)


class JobHistory:
    """Feeds each finished, computed analysis once into the job histograms of a ``ServiceMetrics``."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.watermark: datetime | None = None  # the newest finished_at fed in
        self.seen: dict[str, datetime] = {}  # ids fed in within SLACK_S of the watermark
        self.stages: set[str] = set()
        self._lock = threading.Lock()  # two concurrent scrapes must not feed a job twice

    def ingest(self, ctx: ServiceContext) -> int:
        """Observe the analyses finished since the last call; returns how many were fed in."""
        with self._lock:
            q = select(Analysis.id, Analysis.started_at, Analysis.finished_at, Analysis.result_dir).where(
                Analysis.status == AnalysisStatus.DONE,
                Analysis.cached.is_(False),
                Analysis.started_at.is_not(None),
                Analysis.finished_at.is_not(None),
            )
            if self.watermark is None:
                q = q.order_by(Analysis.finished_at.desc()).limit(BACKFILL)
            else:
                q = q.where(Analysis.finished_at >= self.watermark - timedelta(seconds=SLACK_S))
                q = q.order_by(Analysis.finished_at).limit(MAX_PER_SCRAPE)
            with ctx.sessions() as s:
                rows = s.execute(q).all()
            n = 0
            for aid, started, finished, result_dir in rows:
                if aid in self.seen:
                    continue
                finished = as_utc(finished)
                self.seen[aid] = finished
                self.metrics.job_seconds.observe(max(0.0, (finished - as_utc(started)).total_seconds()))
                if result_dir:
                    self._observe_timings(ctx, result_dir)
                self.watermark = finished if self.watermark is None else max(self.watermark, finished)
                n += 1
            if self.watermark is not None:
                cutoff = self.watermark - timedelta(seconds=SLACK_S)
                self.seen = {k: v for k, v in self.seen.items() if v >= cutoff}
            return n

    def _observe_timings(self, ctx: ServiceContext, result_dir: str) -> None:
        try:
            with open(ctx.storage.result_dir(result_dir) / "result.json", encoding="utf-8") as fh:
                timings = json.load(fh).get("timings_s") or {}
        except (OSError, ValueError, AttributeError):  # a deleted study, or a result of another format
            return
        for stage, seconds in timings.items():
            if stage == "total" or not isinstance(seconds, int | float) or not _STAGE_NAME.fullmatch(stage):
                continue
            if stage not in self.stages:
                if len(self.stages) >= MAX_STAGES:
                    continue
                self.stages.add(stage)
            self.metrics.stage_seconds.labels(stage).observe(float(seconds))
            if stage == "network":
                self.metrics.inference_seconds.observe(float(seconds))


class StateCollector:
    """Metrics read at scrape time from the database and the data folder (see the module docstring)."""

    def __init__(self, get_ctx: ContextFn, readiness: ReadinessFn | None) -> None:
        self._get_ctx = get_ctx
        self._readiness = readiness

    def describe(self) -> list[Metric]:
        # no descriptions up front: collect() needs the context, which exists only once the app started
        return []

    def collect(self) -> Iterator[Metric]:
        build = InfoMetricFamily("lungcad_build", "The running lungcad version")
        build.add_metric([], {"version": __version__})
        yield build
        try:
            ctx = self._get_ctx()
        except (AttributeError, LookupError):  # scraped before the lifespan opened the context
            return
        yield from self._database(ctx)
        try:
            free = float(shutil.disk_usage(ctx.settings.data_dir).free)
        except OSError:
            free = float("nan")
        yield GaugeMetricFamily(
            "lungcad_data_disk_free_bytes", "Free space of the data folder's file system, bytes", value=free
        )
        if self._readiness is not None:
            report = self._readiness()
            yield GaugeMetricFamily(
                "lungcad_ready", "1 when /readyz passes", value=1.0 if report["status"] == "ok" else 0.0
            )
            check = GaugeMetricFamily(
                "lungcad_readiness_check_ok", "1 when a /readyz check passes", labels=["check"]
            )
            for name, result in report["checks"].items():
                check.add_metric([name], 1.0 if result["ok"] else 0.0)
            yield check

    def _database(self, ctx: ServiceContext) -> Iterator[Metric]:
        up = GaugeMetricFamily("lungcad_metrics_database_up", "1 when the scrape could read the database")
        try:
            with ctx.sessions() as s:
                counts = dict(
                    s.execute(select(Analysis.status, func.count()).group_by(Analysis.status)).all()
                )
                model = s.execute(
                    select(ModelFile.model_id, ModelFile.model_version, ModelFile.sha256).where(
                        ModelFile.active.is_(True)
                    )
                ).first()
                deliveries = s.execute(
                    select(ResultDelivery.destination, ResultDelivery.status, func.count()).group_by(
                        ResultDelivery.destination, ResultDelivery.status
                    )
                ).all()
        except Exception as exc:  # noqa: BLE001 - the HTTP metrics must still be served
            get_logger("lungcad.service").warning("metrics_database_failed", error=type(exc).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        counts = {AnalysisStatus(k).value: v for k, v in counts.items()}
        depth = GaugeMetricFamily(
            "lungcad_queue_depth", "Analyses waiting for a worker or being run", labels=["state"]
        )
        for state in (AnalysisStatus.QUEUED, AnalysisStatus.RUNNING):
            depth.add_metric([state.value], float(counts.get(state.value, 0)))
        yield depth
        per_status = GaugeMetricFamily(
            "lungcad_analyses", "Analyses in the database by status", labels=["status"]
        )
        for status in AnalysisStatus:
            per_status.add_metric([status.value], float(counts.get(status.value, 0)))
        yield per_status
        # a count of rows, so it drops when a study and its analyses are deleted: Prometheus reads the drop
        # as a counter reset, which increase() tolerates
        yield CounterMetricFamily(
            "lungcad_analysis_failures",
            "Analyses that ended failed (database count)",
            value=float(counts.get(AnalysisStatus.FAILED.value, 0)),
        )
        sent = GaugeMetricFamily(
            "lungcad_result_deliveries",
            "Result deliveries (SEG / SR / PDF to a PACS) by destination and status (database count)",
            labels=["destination", "status"],
        )
        for destination, status, n in deliveries:
            sent.add_metric([destination, str(getattr(status, "value", status))], float(n))
        yield sent
        info = InfoMetricFamily("lungcad_active_model", "The model new analyses run with")
        if model is not None:
            info.add_metric(
                [], {"model_id": model[0], "model_version": model[1], "sha256_prefix": model[2][:12]}
            )
        yield info
