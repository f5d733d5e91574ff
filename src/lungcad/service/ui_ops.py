"""What the dashboard's batch, models and operations pages show that no ``/api/v1`` route answers whole:
the list of batches, a model's full card, and the operations summary (throughput, queue, latency
percentiles, failures) read from the service's own metrics and database.

The operations numbers come from the same sources as ``GET /metrics``: the job and HTTP latency histograms
of this API process (``ServiceMetrics``, refreshed from the database first, exactly as a scrape does) and
counts of the ``analyses`` table.  Percentiles of a histogram are estimated the way Prometheus's
``histogram_quantile`` does (linear inside the bucket the rank falls in), so the page and a Grafana panel
over the same metrics agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lungcad.service.batches import BatchSummary, batch_summary
from lungcad.service.db.models import Analysis, AnalysisStatus, Batch, ModelFile
from lungcad.service.db.session import as_utc, utcnow
from lungcad.service.errors import not_found

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext
    from lungcad.service.observability_metrics import ServiceMetrics

QUANTILES = (0.5, 0.9, 0.99)
WINDOW_H = 24  # the throughput chart: analyses finished per hour over the last day
MAX_FAILURES = 10  # the newest failures listed
ERROR_CHARS = 200  # an error message is cut to its first line and this many characters
# long-lived or probe requests would swamp the API latency: an event stream lasts as long as its job
_SKIP_ROUTE_SUFFIXES = ("/events",)


def list_batches(s: Session, *, limit: int, offset: int) -> tuple[list[BatchSummary], int]:
    """Batches, newest first, each with its analyses per status and progress."""
    total = s.scalar(select(func.count()).select_from(Batch)) or 0
    ids = s.scalars(select(Batch.id).order_by(Batch.created_at.desc(), Batch.id).limit(limit).offset(offset))
    return [batch_summary(s, i) for i in ids], total


def model_card(s: Session, sha256: str) -> dict[str, Any]:
    """The full model card embedded in a registered model file (``{}`` when it has none)."""
    row = s.get(ModelFile, sha256)
    if row is None:
        raise not_found("model", sha256)
    return dict(row.card or {})


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram given as ``(upper bound, cumulative count)`` pairs.

    Prometheus's rule: find the bucket in which the rank ``q * total`` falls and interpolate linearly
    between its lower and upper bound (the first bucket's lower bound is 0).  A rank in the ``+Inf`` bucket
    gives the highest finite bound.  ``None`` for an empty histogram.

    Example: bounds (1, 2, 5, +Inf) with cumulative counts (2, 6, 8, 8): the median's rank is 4, in the
    (1, 2] bucket holding ranks 2-6, so 1 + (2 - 1) * (4 - 2) / 4 = 1.5.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    pairs = sorted(buckets)
    if not pairs or pairs[-1][1] <= 0:
        return None
    total = pairs[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in pairs:
        if cumulative >= rank and cumulative > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        lower, below = (upper if not math.isinf(upper) else lower), cumulative
    return lower


def _buckets(samples: Iterable[Any], keep) -> dict[float, float]:  # noqa: ANN001 - a label predicate
    """Cumulative bucket counts summed over the label sets ``keep(labels)`` accepts."""
    out: dict[float, float] = {}
    for sample in samples:
        if sample.name.endswith("_bucket") and keep(sample.labels):
            le = float(sample.labels["le"])
            out[le] = out.get(le, 0.0) + sample.value
    return out


def _summary(buckets: dict[float, float], total_s: float) -> dict[str, Any]:
    n = int(max(buckets.values(), default=0.0))
    pairs = list(buckets.items())
    if n == 1:  # one observation is every quantile of itself; the buckets would only bracket it
        return {"count": 1, "mean_s": total_s, **{f"p{round(q * 100)}_s": total_s for q in QUANTILES}}
    return {
        "count": n,
        "mean_s": total_s / n if n else None,
        **{f"p{round(q * 100)}_s": histogram_quantile(q, pairs) for q in QUANTILES},
    }


def _sum_of(samples: Iterable[Any], keep) -> float:  # noqa: ANN001 - a label predicate
    return sum(s.value for s in samples if s.name.endswith("_sum") and keep(s.labels))


def latency(metrics: ServiceMetrics) -> dict[str, Any]:
    """Percentiles of computed analyses (started to finished), of each pipeline stage and of API requests."""
    metrics.refresh()
    jobs = [s for m in metrics.job_seconds.collect() for s in m.samples]
    stages = [s for m in metrics.stage_seconds.collect() for s in m.samples]
    http = [s for m in metrics.http_seconds.collect() for s in m.samples]

    def api_route(labels: dict[str, str]) -> bool:
        route = labels.get("route", "")
        return route.startswith("/api/v1") and not route.endswith(_SKIP_ROUTE_SUFFIXES)

    names = sorted({s.labels["stage"] for s in stages if "stage" in s.labels})
    return {
        "analysis": _summary(_buckets(jobs, lambda _l: True), _sum_of(jobs, lambda _l: True)),
        "stages": {
            n: _summary(
                _buckets(stages, lambda lb, n=n: lb.get("stage") == n),
                _sum_of(stages, lambda lb, n=n: lb.get("stage") == n),
            )
            for n in names
        },
        "api": _summary(_buckets(http, api_route), _sum_of(http, api_route)),
    }


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def throughput(s: Session, now: datetime, hours: int = WINDOW_H) -> list[dict[str, Any]]:
    """Analyses finished (done / failed) in each of the last ``hours`` clock hours, oldest first."""
    start = _hour(now) - timedelta(hours=hours - 1)
    rows = s.execute(
        select(Analysis.finished_at, Analysis.status).where(
            Analysis.finished_at >= start,
            Analysis.status.in_([AnalysisStatus.DONE, AnalysisStatus.FAILED]),
        )
    ).all()
    slots = {start + timedelta(hours=i): {"done": 0, "failed": 0} for i in range(hours)}
    for finished, status in rows:
        slot = slots.get(_hour(as_utc(finished)))
        if slot is not None:
            slot[AnalysisStatus(status).value] += 1
    return [{"hour": h.isoformat(), **v} for h, v in slots.items()]


def _short(error: str | None) -> str:
    line = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    return line[:ERROR_CHARS] + ("…" if len(line) > ERROR_CHARS else "")


def operations(ctx: ServiceContext, metrics: ServiceMetrics) -> dict[str, Any]:
    """The operations page's numbers (no patient data: ids, counts and seconds only)."""
    now = utcnow()
    day_ago = now - timedelta(hours=WINDOW_H)
    with ctx.sessions() as s:
        counts = {
            AnalysisStatus(k).value: v
            for k, v in s.execute(select(Analysis.status, func.count()).group_by(Analysis.status)).all()
        }
        queued = Analysis.status == AnalysisStatus.QUEUED
        oldest = s.scalar(select(func.min(Analysis.created_at)).where(queued))
        hourly = throughput(s, now)
        failed_day = s.scalar(
            select(func.count()).where(
                Analysis.status == AnalysisStatus.FAILED, Analysis.finished_at >= day_ago
            )
        )
        recent = s.execute(
            select(Analysis.id, Analysis.finished_at, Analysis.stage, Analysis.error)
            .where(Analysis.status == AnalysisStatus.FAILED)
            .order_by(Analysis.finished_at.desc())
            .limit(MAX_FAILURES)
        ).all()
    done_day = sum(h["done"] for h in hourly)
    last_hour = hourly[-1] if hourly else {"done": 0, "failed": 0}
    return {
        "at": now.isoformat(),
        "window_hours": WINDOW_H,
        "throughput": {
            "per_hour": hourly,
            "done_last_hour": last_hour["done"],
            "done_last_day": done_day,
            "mean_per_hour": done_day / WINDOW_H,
        },
        "queue": {
            "queued": counts.get(AnalysisStatus.QUEUED.value, 0),
            "running": counts.get(AnalysisStatus.RUNNING.value, 0),
            "oldest_queued_s": (now - as_utc(oldest)).total_seconds() if oldest else None,
        },
        "analyses": {st.value: counts.get(st.value, 0) for st in AnalysisStatus},
        "latency": latency(metrics),
        "failures": {
            "total": counts.get(AnalysisStatus.FAILED.value, 0),
            "last_day": failed_day or 0,
            "recent": [
                {
                    "analysis_id": aid,
                    "finished_at": as_utc(at).isoformat() if at else None,
                    "stage": stage,
                    "error": _short(error),
                }
                for aid, at, stage, error in recent
            ],
        },
    }
