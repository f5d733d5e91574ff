"""Result cache and worklist fields.

An analysis is a pure function of (series, model file, effective configuration, report flag): the same
four give byte-identical ``result.json`` (apart from timings).  So a done analysis of the same key whose
result folder is still on disk answers a new request at once -- the new row points at the same folder with
``cached = True`` and copies its worklist fields.  The API checks at creation time; a worker checks again
at claim time (two identical requests queued together: the second one finds the first's result).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lungcad.service.db.models import Analysis, AnalysisStatus, Study
from lungcad.service.db.session import utcnow
from lungcad.service.storage import Storage
from lungcad.types import ScanResult

# Copied from the cached analysis onto the new one (the result folder and what the worklist sorts by).
WORKLIST_FIELDS = ("scan_status", "lung_rads", "priority_rank", "triage_probability", "n_findings")


def find_cached(
    session: Session,
    series_uid: str,
    model_sha: str,
    config_hash: str,
    report: bool,
    *,
    storage: Storage,
    exclude: str | None = None,
    risk_options: str | None = None,
) -> Analysis | None:
    """The newest done analysis of this key whose result folder exists and whose study has not changed
    since it was created (a PACS may have added instances to the series), or None.

    Args:
        storage: where the result folders are (a row whose folder was removed by hand is no cache).
        exclude: an analysis id not to return (the row that is asking).
        risk_options: the Brock risk options (``Analysis.risk_options``): they change the result.
    """
    q = (
        select(Analysis)
        .join(Study, Study.id == Analysis.study_id)
        .where(
            Analysis.series_uid == series_uid,
            Analysis.model_sha256 == model_sha,
            Analysis.config_hash == config_hash,
            Analysis.report.is_(bool(report)),
            Analysis.risk_options.is_(None)
            if risk_options is None
            else Analysis.risk_options == risk_options,
            Analysis.status == AnalysisStatus.DONE,
            Analysis.result_dir.is_not(None),
            Analysis.created_at >= Study.updated_at,
        )
        .order_by(Analysis.finished_at.desc())
        .limit(20)  # a handful at most; more only if folders went missing
    )
    if exclude is not None:
        q = q.where(Analysis.id != exclude)
    for row in session.scalars(q):
        if row.result_dir and (storage.result_dir(row.result_dir) / "result.json").is_file():
            return row
    return None


def cached_values(source: Analysis) -> dict[str, Any]:
    """Column values that make a new analysis a finished copy of ``source``: ``Analysis(**values, ...)``
    at creation, or an UPDATE of a claimed row."""
    now = utcnow()
    return {
        "status": AnalysisStatus.DONE,
        "result_dir": source.result_dir,
        "cached": True,
        "progress": 1.0,
        "stage": "done",
        "error": None,
        "finished_at": now,
        **{name: getattr(source, name) for name in WORKLIST_FIELDS},
    }


def worklist_fields(result: ScanResult, report_threshold: float) -> dict[str, Any]:
    """The worklist columns of a finished analysis, from its ``ScanResult``.

    ``lung_rads`` is the scan priority (the highest category of the shown findings; None for a scan that
    could not be analysed), ``priority_rank`` its order 1 < 2 < 3 < 4A < 4B < 4X as 0..5 (-1: none),
    ``triage_probability`` the highest calibrated probability of an actionable nodule among the findings
    shown (probability >= ``report_threshold``, ``infer.report_threshold``), ``n_findings`` how many are
    shown -- the same findings the report and the ``detect`` table show.
    """
    from lungcad.report.shown import shown_findings

    shown = [s.finding for s in shown_findings(result, report_threshold)]
    priority = result.priority
    return {
        "scan_status": result.status.value,
        "lung_rads": priority.value if priority is not None else None,
        "priority_rank": priority.rank if priority is not None else -1,
        "triage_probability": max((f.triage_probability or 0.0 for f in shown), default=0.0),
        "n_findings": len(shown),
    }
