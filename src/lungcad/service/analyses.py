"""Analyses: create (or reuse a cached result), read, list, cancel; the result document and its files.

An analysis is one row (``lungcad.service.db.models.Analysis``); the job queue carries only its id.  Creating
one resolves everything the job needs up front -- the series (default: the study's usable CT series with the
most instances), the model (a sha256, a unique prefix of it, or the active one) and the *effective*
configuration (the service's, with the model's own model and preprocessing sections), recorded as a config
version -- so a bad request fails with a 4xx and nothing stored, and a job never guesses.

Cache (``lungcad.service.jobs.cache``): the same (series, model sha256, config hash, report flag) done
before, with its ``result.json`` still on disk and the study not changed since (a PACS may have added
instances to the series), gives a new row that is ``done`` at once with ``cached=True`` and the same
``result_dir``: no job, no detector.

The result document and the files of a done analysis: ``lungcad.service.results``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lungcad.log import get_logger
from lungcad.service import webhooks
from lungcad.service.db.models import Analysis, AnalysisStatus, Batch, ModelFile, Study
from lungcad.service.db.session import as_utc, transaction, utcnow
from lungcad.service.errors import ApiError, conflict, not_found
from lungcad.service.jobs.cache import cached_values, find_cached
from lungcad.service.models_registry import active_model, effective_config, record_config
from lungcad.service.studies import get_study, iter_usable_series

if TYPE_CHECKING:  # the context imports the registry, which this module uses
    from lungcad.service.context import ServiceContext

log = get_logger("lungcad.service.analyses")

RESULT_FILE = "result.json"
MIN_PREFIX = 8
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Plan:
    """What one new analysis will run on (resolved and checked before anything is written)."""

    study: Study
    series_uid: str


# -- resolving a request ---------------------------------------------------------------------------------
def resolve_model(s: Session, ref: str | None) -> ModelFile:
    """The model named by ``ref`` (sha256 or unique prefix of >= 8 hex digits), or the active one."""
    if ref is None:
        row = active_model(s)
        if row is None:
            raise ApiError(409, "no_active_model", "no model is active", fix="PUT /api/v1/models/active")
        return row
    ref = ref.strip().lower()
    if len(ref) < MIN_PREFIX or not set(ref) <= _HEX:
        raise ApiError(
            422,
            "invalid_model",
            f"model {ref!r} is not a sha256 or a prefix of one ({MIN_PREFIX}+ hex digits)",
            fix="pass a sha256 from GET /api/v1/models, or omit model for the active one",
        )
    rows = s.scalars(select(ModelFile).where(ModelFile.sha256.startswith(ref)).limit(2)).all()
    if not rows:
        raise ApiError(
            404, "not_found", f"no model with sha256 {ref!r}", fix="list them with GET /api/v1/models"
        )
    if len(rows) > 1:
        raise ApiError(
            422, "ambiguous_model", f"model prefix {ref!r} matches several models", fix="pass more digits"
        )
    return rows[0]


def resolve_series(study: Study, series_uid: str | None) -> str:
    """``series_uid`` if it is a usable series of ``study``; the default one when None (422 otherwise)."""
    usable = [r.series_uid for r in iter_usable_series(study)]
    if series_uid is None:
        if usable:
            return usable[0]
        reasons = "; ".join(f"{r.series_uid}: {r.reason or 'not usable'}" for r in study.series) or "none"
        raise ApiError(
            422,
            "no_usable_series",
            f"study {study.id} has no usable CT series ({reasons})",
            fix="upload an axial CT series of the chest to this study",
            series=[{"series_uid": r.series_uid, "reason": r.reason} for r in study.series],
        )
    if series_uid in usable:
        return series_uid
    known = {r.series_uid: r for r in study.series}
    why = (
        f"series {series_uid} of study {study.id} is not usable ({known[series_uid].reason or 'not a CT'})"
        if series_uid in known
        else f"study {study.id} has no series {series_uid}"
    )
    raise ApiError(
        422,
        "unusable_series",
        f"{why}; usable series: {', '.join(usable) or 'none'}",
        fix="pass one of the usable series_uid values, or omit series_uid for the default",
        usable=usable,
    )


# -- creating --------------------------------------------------------------------------------------------
def create_analyses(
    ctx: ServiceContext,
    requests: Sequence[tuple[str, str | None]],
    *,
    model: str | None = None,
    report: bool = False,
    batch: bool = False,
    risk: dict[str, object] | None = None,
) -> tuple[Batch | None, list[Analysis]]:
    """One analysis per ``(study_id, series_uid or None)``, all or none (a bad one fails the request).

    ``risk``: the Brock risk options (``lungcad.infer.risk.RiskOptions`` keyword arguments); they change
    the result, so they are part of the cache key.

    Returns the batch (``batch=True``) and the new rows in request order; queued ones are enqueued after
    the commit, cached ones are done already.
    """
    risk_options = risk_key(risk)
    with ctx.sessions() as s:
        model_row = resolve_model(s, model)
    # the configuration the job will run under, stored once per hash (GET /configs/{hash})
    config_hash = record_config(ctx, effective_config(ctx, model_row))
    now = utcnow()
    with transaction(ctx.sessions) as s:
        plans = []
        for study_id, series_uid in requests:
            study = get_study(s, study_id)
            plans.append(Plan(study, resolve_series(study, series_uid)))
        batch_row = Batch(id=uuid.uuid4().hex, created_at=now) if batch else None
        if batch_row is not None:
            s.add(batch_row)
        # one microsecond apart: the rows keep the request's order (batch listings sort by created_at)
        rows = [
            _new_row(
                ctx,
                s,
                p,
                model_row.sha256,
                config_hash,
                report,
                batch_row,
                now + timedelta(microseconds=i),
                risk_options,
            )
            for i, p in enumerate(plans)
        ]
        s.add_all(rows)
    for row in (r for r in rows if r.status == AnalysisStatus.DONE):  # cached: done already, notify now
        webhooks.emit_analysis(ctx, row.id)
    _enqueue(ctx, [r for r in rows if r.status == AnalysisStatus.QUEUED])
    return batch_row, rows


def create_analysis(
    ctx: ServiceContext,
    *,
    study_id: str,
    series_uid: str | None = None,
    model: str | None = None,
    report: bool = False,
    risk: dict[str, object] | None = None,
) -> Analysis:
    """``POST /analyses``: one analysis (see :func:`create_analyses`)."""
    return create_analyses(ctx, [(study_id, series_uid)], model=model, report=report, risk=risk)[1][0]


def risk_key(risk: dict[str, object] | None) -> str | None:
    """The risk options as the row stores them: canonical JSON of the options given, None when none.

    Raises:
        ApiError: 422 when an option is out of range (``RiskOptions`` checks them).
    """
    import json

    from lungcad.errors import InputError
    from lungcad.infer.risk import RiskOptions

    try:
        options = RiskOptions(**(risk or {})).to_dict()  # type: ignore[arg-type]
    except InputError as exc:
        raise ApiError(422, "invalid_risk", str(exc), fix="see the risk fields of POST /analyses") from None
    return json.dumps(options, sort_keys=True, separators=(",", ":")) if options else None


def _new_row(
    ctx: ServiceContext,
    s: Session,
    plan: Plan,
    sha: str,
    config_hash: str,
    report: bool,
    batch: Batch | None,
    now: datetime,
    risk_options: str | None = None,
) -> Analysis:
    row = Analysis(
        id=uuid.uuid4().hex,
        study_id=plan.study.id,
        series_uid=plan.series_uid,
        model_sha256=sha,
        config_hash=config_hash,
        report=report,
        risk_options=risk_options,
        status=AnalysisStatus.QUEUED,
        progress=0.0,
        attempts=0,
        created_at=now,
        batch_id=batch.id if batch is not None else None,
    )
    hit = find_cached(
        s, plan.series_uid, sha, config_hash, report, storage=ctx.storage, risk_options=risk_options
    )
    # a study changed since (a PACS added instances to the series) is analysed afresh
    if hit is not None and as_utc(hit.created_at) >= as_utc(plan.study.updated_at):
        for name, value in cached_values(hit).items():
            setattr(row, name, value)
        row.started_at = row.finished_at
    return row


def _enqueue(ctx: ServiceContext, rows: Sequence[Analysis]) -> None:
    """Send the jobs.  A queue that cannot be reached answers 503, naming the analyses: their rows stay
    ``queued`` and a worker's reaper sends them later (``lungcad.service.jobs``), so a client must not
    create them again."""
    if not rows:
        return
    from lungcad.service.jobs.queue import enqueue_analysis

    unsent: list[str] = []
    for row in rows:
        try:
            enqueue_analysis(ctx, row.id)
        except Exception as exc:  # noqa: BLE001 - any back-end error (Redis down, disk full)
            log.error("enqueue_failed", analysis=row.id, error_type=type(exc).__name__)
            unsent.append(row.id)
    if unsent:
        raise ApiError(
            503,
            "queue_unavailable",
            f"{len(unsent)} analysis job(s) were stored but could not be queued; a worker will queue them",
            fix="poll the analyses named in analysis_ids; do not create them again",
            analysis_ids=unsent,
        )


# -- reading ---------------------------------------------------------------------------------------------
def get_analysis(s: Session, analysis_id: str) -> tuple[Analysis, ModelFile | None]:
    row = s.get(Analysis, analysis_id)
    if row is None:
        raise not_found("analysis", analysis_id)
    return row, s.get(ModelFile, row.model_sha256)


def list_analyses(
    s: Session,
    *,
    status: AnalysisStatus | None = None,
    study_id: str | None = None,
    batch_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[Analysis, ModelFile | None]], int]:
    """Analyses newest first, with their models; and the total matching the filters."""
    q = select(Analysis)
    if status is not None:
        q = q.where(Analysis.status == status)
    if study_id is not None:
        q = q.where(Analysis.study_id == study_id)
    if batch_id is not None:
        q = q.where(Analysis.batch_id == batch_id)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = s.execute(
        q.add_columns(ModelFile)
        .outerjoin(ModelFile, ModelFile.sha256 == Analysis.model_sha256)
        .order_by(Analysis.created_at.desc(), Analysis.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [(r[0], r[1]) for r in rows], total


def cancel_analysis(ctx: ServiceContext, analysis_id: str) -> tuple[Analysis, ModelFile | None]:
    """Cancel a queued or running analysis (a running job stops at its next progress report).

    Raises 404 for an unknown id and 409 for a finished one (its status is in the body)."""
    with transaction(ctx.sessions) as s:
        changed = s.execute(
            update(Analysis)
            .where(
                Analysis.id == analysis_id,
                Analysis.status.in_([AnalysisStatus.QUEUED, AnalysisStatus.RUNNING]),
            )
            .values(status=AnalysisStatus.CANCELLED, finished_at=utcnow(), error="cancelled by a user")
        ).rowcount
        row, model = get_analysis(s, analysis_id)
        if not changed:
            err = conflict(
                f"analysis {analysis_id} is already {row.status.value}; only queued or running ones can be "
                "cancelled",
                fix="nothing to do; create a new analysis to run it again",
            )
            err.extra["status"] = row.status.value
            raise err
        s.refresh(row)
        return row, model
