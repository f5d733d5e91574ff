"""The worklist: analysed studies, most urgent first, as one indexed SQL query.

One row per study -- its newest done analysis (newest ``finished_at``, then ``created_at``, then id) --
ordered by triage priority: the highest Lung-RADS category first (``priority_rank``: ``LungRads.rank``,
-1 without findings), then the highest actionable (triage) probability, then the study date (newest
first, unknown dates last), then the analysis's creation time (newest first).

The query is written so the database does the work: the outer scan reads ``ix_analyses_worklist``
(status, priority_rank, triage_probability) in index order -- ``status = 'done'`` fixes its first column,
so the first two sort keys come from the index and only ties need sorting -- and "newest done analysis of
this study" is a correlated subquery on ``ix_analyses_study_id``.  Nothing is sorted or filtered in Python,
so ``limit`` / ``offset`` page straight from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from lungcad.contracts import LungRads, ScanStatus
from lungcad.service.db.models import Analysis, AnalysisStatus, Study


@dataclass(frozen=True)
class WorklistFilters:
    """Filters of ``GET /worklist`` (None: no filter)."""

    scan_status: ScanStatus | None = None
    min_lung_rads: LungRads | None = None  # this category or a more urgent one
    date_from: date | None = None  # study date, inclusive
    date_to: date | None = None
    patient_id_hash: str | None = None


def _newest_done_id() -> object:
    """The id of the newest done analysis of the outer row's study (a correlated scalar subquery)."""
    other = aliased(Analysis)
    # ``coalesce(status, '')`` rather than ``status``: both terms are equalities, and without table
    # statistics (no ANALYZE) SQLite picks the status index for the subquery -- every done analysis of the
    # service, sorted, once per outer row.  The expression leaves the study index as the only candidate:
    # a study's few analyses.  PostgreSQL plans it the same way.
    return (
        select(other.id)
        .where(
            other.study_id == Analysis.study_id,
            func.coalesce(other.status, "") == AnalysisStatus.DONE.value,
        )
        .order_by(other.finished_at.desc(), other.created_at.desc(), other.id.desc())
        .limit(1)
        .correlate(Analysis)
        .scalar_subquery()
    )


def worklist_query(filters: WorklistFilters) -> Select:
    """The filtered rows (Analysis, Study), unordered."""
    q = (
        select(Analysis, Study)
        .join(Study, Study.id == Analysis.study_id)
        .where(Analysis.status == AnalysisStatus.DONE, Analysis.id == _newest_done_id())
    )
    if filters.scan_status is not None:
        q = q.where(Analysis.scan_status == ScanStatus(filters.scan_status).value)
    if filters.min_lung_rads is not None:
        q = q.where(Analysis.priority_rank >= LungRads(filters.min_lung_rads).rank)
    if filters.date_from is not None:
        q = q.where(Study.study_date >= filters.date_from)
    if filters.date_to is not None:
        q = q.where(Study.study_date <= filters.date_to)
    if filters.patient_id_hash:
        q = q.where(Study.patient_id_hash == filters.patient_id_hash)
    return q


def ordered(q: Select) -> Select:
    """``q`` in worklist order (see the module docstring); the id breaks the last ties so pages are stable."""
    return q.order_by(
        Analysis.priority_rank.desc(),
        Analysis.triage_probability.desc(),
        Study.study_date.desc().nulls_last(),
        Analysis.created_at.desc(),
        Analysis.id,
    )


def worklist(
    s: Session, filters: WorklistFilters | None = None, *, limit: int = 50, offset: int = 0
) -> tuple[list[tuple[Analysis, Study]], int]:
    """One page of the worklist and the number of rows matching the filters."""
    q = worklist_query(filters or WorklistFilters())
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = s.execute(ordered(q).limit(limit).offset(offset)).all()
    return [(r[0], r[1]) for r in rows], total
