"""The life of an ``analyses`` row, as conditional UPDATEs: the only writes a job makes to its row.

A queue message only says "look at analysis X"; a message may arrive twice (a retry, a re-queue after a
dead worker, two reapers), so the row decides.  :func:`claim` moves it ``queued -> running`` in one UPDATE
whose WHERE clause is the claim rule, and stamps a fresh token; every later write of that attempt
(progress, heartbeat, done, failed, re-queued) is conditional on ``claim == token AND status = running``.
An attempt that lost its row (cancelled, deleted, taken over after its heartbeat lapsed) therefore writes
nothing -- the UPDATE matches 0 rows and the attempt learns it has to stop.

Both databases make this atomic: SQLite has one writer at a time, and PostgreSQL re-checks the WHERE clause
of an UPDATE against the row it waited for (READ COMMITTED), so of two concurrent claims exactly one matches.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session, sessionmaker

from lungcad.service import webhooks
from lungcad.service.db.models import Analysis, AnalysisStatus
from lungcad.service.db.session import transaction, utcnow

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

RUNNING = AnalysisStatus.RUNNING
QUEUED = AnalysisStatus.QUEUED


class JobStopped(Exception):  # noqa: N818 - a signal to stop, not an error
    """The attempt no longer owns its row and must stop without writing (raised from ``progress``)."""


class JobCancelled(JobStopped):
    """Someone cancelled the analysis (``POST /analyses/{id}/cancel`` set ``status = cancelled``)."""


class JobGone(JobStopped):
    """The row was deleted (its study was) or another attempt claimed it after this one's lease ran out."""


class JobTimeout(Exception):  # noqa: N818 - reads as the outcome
    """The attempt ran past ``settings.job_timeout_s``."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"timed out after {limit_s:g} s")
        self.limit_s = limit_s


def execute_update(sessions: sessionmaker[Session], stmt: Any) -> int:
    """Run one UPDATE in its own transaction and return how many rows it matched."""
    with transaction(sessions) as s:
        return int(s.execute(stmt.execution_options(synchronize_session=False)).rowcount or 0)


def _owned(analysis_id: str, token: str) -> Any:
    return and_(Analysis.id == analysis_id, Analysis.claim == token, Analysis.status == RUNNING)


def claim(ctx: ServiceContext, analysis_id: str, worker: str) -> str | None:
    """Take the row for one attempt; returns the claim token, or None when it is not claimable.

    Claimable: ``queued``, or ``running`` with a heartbeat older than ``lease_s`` (its worker died) and
    retries left.  Not claimable: done, failed, cancelled, deleted, or running with a fresh heartbeat.
    The claim adds one to ``attempts`` and stamps ``worker``, ``started_at`` and ``heartbeat_at``.
    """
    token = uuid.uuid4().hex
    now = utcnow()
    stale = now - timedelta(seconds=ctx.settings.lease_s)
    rule = or_(
        Analysis.status == QUEUED,
        and_(
            Analysis.status == RUNNING,
            or_(Analysis.heartbeat_at.is_(None), Analysis.heartbeat_at < stale),
            Analysis.attempts <= ctx.settings.job_retries,
        ),
    )
    stmt = (
        update(Analysis)
        .where(Analysis.id == analysis_id, rule)
        .values(
            status=RUNNING,
            claim=token,
            attempts=Analysis.attempts + 1,
            worker=worker[:200],
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            stage="claimed",
        )
    )
    return token if execute_update(ctx.sessions, stmt) == 1 else None


def heartbeat(ctx: ServiceContext, analysis_id: str, token: str) -> bool:
    """Refresh ``heartbeat_at``; False: the attempt lost its row."""
    stmt = update(Analysis).where(_owned(analysis_id, token)).values(heartbeat_at=utcnow())
    return execute_update(ctx.sessions, stmt) == 1


def set_progress(ctx: ServiceContext, analysis_id: str, token: str, stage: str, fraction: float) -> bool:
    """Write progress (0 to 1) and the stage name (also a heartbeat); False: the attempt lost its row."""
    stmt = (
        update(Analysis)
        .where(_owned(analysis_id, token))
        .values(progress=min(max(float(fraction), 0.0), 1.0), stage=stage[:32], heartbeat_at=utcnow())
    )
    return execute_update(ctx.sessions, stmt) == 1


def why_lost(ctx: ServiceContext, analysis_id: str) -> JobStopped:
    """The reason an attempt's conditional write matched nothing, as the exception to stop with."""
    with ctx.sessions() as s:
        row = s.get(Analysis, analysis_id)
        if row is None:
            return JobGone(f"analysis {analysis_id} was deleted")
        if row.status is AnalysisStatus.CANCELLED:
            return JobCancelled(f"analysis {analysis_id} was cancelled")
        return JobGone(f"analysis {analysis_id} was taken over (status {row.status.value})")


def finish_done(
    ctx: ServiceContext, analysis_id: str, token: str, result_dir: str, fields: dict[str, Any]
) -> bool:
    """Mark the attempt's row done with its result folder and worklist fields; False: it lost the row."""
    stmt = (
        update(Analysis)
        .where(_owned(analysis_id, token))
        .values(
            status=AnalysisStatus.DONE,
            result_dir=result_dir,
            finished_at=utcnow(),
            progress=1.0,
            stage="done",
            error=None,
            **fields,
        )
    )
    done = execute_update(ctx.sessions, stmt) == 1
    if done:  # committed: notify the webhooks (never raises)
        webhooks.emit_analysis(ctx, analysis_id)
        from lungcad.service.delivery import queue_after_analysis

        queue_after_analysis(ctx, analysis_id)  # push SEG / SR / PDF to the PACS (issue 16; never raises)
    return done


def finish_failed(ctx: ServiceContext, analysis_id: str, token: str, error: str) -> bool:
    """Mark the attempt's row failed with a reason a user can read."""
    stmt = (
        update(Analysis)
        .where(_owned(analysis_id, token))
        .values(status=AnalysisStatus.FAILED, error=error, finished_at=utcnow())
    )
    failed = execute_update(ctx.sessions, stmt) == 1
    if failed:  # committed: notify the webhooks (never raises)
        webhooks.emit_analysis(ctx, analysis_id)
    return failed


def requeue(ctx: ServiceContext, analysis_id: str, token: str, error: str) -> bool:
    """Put the attempt's row back to ``queued`` after a transient error (the error is kept as a note).

    ``heartbeat_at`` becomes the time it was queued again: the reaper uses it to tell a message that is
    merely waiting for its retry delay from one lost to a crash.
    """
    stmt = (
        update(Analysis)
        .where(_owned(analysis_id, token))
        .values(status=QUEUED, claim=None, error=error, heartbeat_at=utcnow(), progress=0.0, stage="retrying")
    )
    return execute_update(ctx.sessions, stmt) == 1
