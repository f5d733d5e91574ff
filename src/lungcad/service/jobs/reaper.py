"""Recovering the jobs of dead workers and lost queue messages.

A worker killed in the middle of a job (kill -9, a lost machine, out of memory) leaves its row ``running``
with a heartbeat that stops moving.  Once it is older than ``lease_s``, :func:`reap` puts the row back to
``queued`` and sends a message for it -- or fails it when it has used up its attempts (a scan that kills
its worker every time must not kill every worker in turn).  A message can also be lost on its own (the
SQLite queue file of a crashed machine, a Redis restart without persistence): a row ``queued`` for longer
than a lease plus the retry delay while the queue holds no pending message gets a new one.

Every worker runs :func:`reap` at start-up and every ``lease_s / 2``; several reapers at once are harmless,
because each repair is a conditional UPDATE (only one matches) and duplicate messages are no-ops (only one
claim succeeds).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select, update

from lungcad.log import get_logger
from lungcad.service import webhooks
from lungcad.service.db.models import Analysis, AnalysisStatus
from lungcad.service.db.session import utcnow
from lungcad.service.jobs.queue import send_analysis
from lungcad.service.jobs.state import execute_update

if TYPE_CHECKING:
    from huey import Huey

    from lungcad.service.context import ServiceContext

RUNNING = AnalysisStatus.RUNNING
QUEUED = AnalysisStatus.QUEUED


def reap(ctx: ServiceContext, *, queue: Huey | None = None) -> int:
    """Re-queue (or fail) running rows of dead workers and re-send lost messages; returns rows touched."""
    s = ctx.settings
    huey = queue if queue is not None else ctx.queue
    log = get_logger("lungcad.service.jobs")
    now = utcnow()
    stale = now - timedelta(seconds=s.lease_s)
    silent = or_(Analysis.heartbeat_at.is_(None), Analysis.heartbeat_at < stale)
    with ctx.sessions() as session:
        dead = session.execute(
            select(Analysis.id, Analysis.claim, Analysis.attempts).where(Analysis.status == RUNNING, silent)
        ).all()
    touched: set[str] = set()
    resend: list[str] = []
    for analysis_id, token, attempts in dead:
        same = Analysis.claim.is_(None) if token is None else Analysis.claim == token
        where = and_(Analysis.id == analysis_id, Analysis.status == RUNNING, same, silent)
        if attempts > s.job_retries:
            values = {
                "status": AnalysisStatus.FAILED,
                "error": f"worker died {attempts} times (no heartbeat for {s.lease_s:g} s); not retried",
                "finished_at": now,
            }
        else:
            values = {
                "status": QUEUED,
                "claim": None,
                "error": f"worker of attempt {attempts} died (no heartbeat for {s.lease_s:g} s); re-queued",
                "heartbeat_at": now,
                "progress": 0.0,
                "stage": "requeued",
            }
        if execute_update(ctx.sessions, update(Analysis).where(where).values(**values)) == 1:
            touched.add(analysis_id)
            action = "failed" if values["status"] is AnalysisStatus.FAILED else "requeued"
            log.warning("job_reaped", job=analysis_id, attempt=attempts, action=action)
            if action == "requeued":
                resend.append(analysis_id)
            else:  # failed for good: notify the webhooks (never raises)
                webhooks.emit_analysis(ctx, analysis_id)
    if huey.pending_count() == 0:
        # a row waiting for its retry delay has no pending message either: wait the delay out first
        lost_before = now - timedelta(seconds=s.lease_s + s.job_retry_delay_s)
        with ctx.sessions() as session:
            lost = session.scalars(
                select(Analysis.id).where(
                    Analysis.status == QUEUED,
                    func.coalesce(Analysis.heartbeat_at, Analysis.created_at) < lost_before,
                )
            ).all()
        for analysis_id in lost:
            if analysis_id not in touched:
                log.warning("job_resent", job=analysis_id, reason="no pending message")
                touched.add(analysis_id)
                resend.append(analysis_id)
    for analysis_id in resend:
        send_analysis(huey, analysis_id)
    return len(touched)
