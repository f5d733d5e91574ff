"""Studies: store a staged upload, list, read, delete.

Storing is two steps with one visible moment: every file goes into the blob store first (content-addressed,
atomic), then one database transaction adds the study, series and instance rows.  A crash before the commit
leaves only unreferenced blobs (harmless, identical bytes get the same name) and no study; a reader never
sees an instance whose file is missing.

A study that arrives in parts (a PACS sends one series per STOW request, or one instance per request) is
merged: new series and instances are added to the study of the same StudyInstanceUID; an instance already
stored (same SOPInstanceUID) is kept as it is and reported as a duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from lungcad.service.db.models import Analysis, ComparisonRow, Instance, Series, Study
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.errors import ApiError, not_found
from lungcad.service.security import patient_hash

StudyState = Literal["analysed", "pending", "new"]


@dataclass
class StoreOutcome:
    study: Study
    stored: list[dict[str, str]] = field(default_factory=list)  # sop_uid, sop_class_uid, series_uid
    duplicates: list[dict[str, str]] = field(default_factory=list)
    created: bool = False


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])) if len(text) >= 8 else None
    except ValueError:
        return None


def store_staged(ctx: Any, staged: Any) -> StoreOutcome:
    """Move a staged study (``lungcad.service.intake.StagedStudy``) into storage and the database."""
    instances = list(staged.instances)
    cap = ctx.settings.max_study_bytes
    with ctx.sessions() as s:  # before any file moves: a refused study leaves nothing behind
        _check_study_size(s, staged.study_uid, instances, cap)
    blobs = [ctx.storage.put_file(i.path, move=True) for i in instances]
    secret = ctx.settings.secret_key
    now = utcnow()
    series_facts = {s.series_uid: s for s in staged.series}
    with transaction(ctx.sessions) as s:
        study = s.scalar(select(Study).where(Study.study_uid == staged.study_uid))
        created = study is None
        if study is None:
            study = Study(
                id=uuid.uuid4().hex,
                study_uid=staged.study_uid,
                patient_id=staged.patient_id,
                patient_name=staged.patient_name,
                patient_birth_date=(
                    staged.patient_birth_date.strftime("%Y%m%d") if staged.patient_birth_date else None
                ),
                accession_number=getattr(staged, "accession", None),
                patient_id_hash=patient_hash(secret, staged.patient_id),
                study_date=_as_date(staged.study_date),
                description=getattr(staged, "description", None),
                created_at=now,
                updated_at=now,
            )
            s.add(study)
            s.flush()
        series_rows = {row.series_uid: row for row in study.series}
        outcome = StoreOutcome(study=study, created=created)
        uids = [i.sop_instance_uid for i in instances]
        known = set(s.scalars(select(Instance.sop_uid).where(Instance.sop_uid.in_(uids)))) if uids else set()
        for inst, (digest, size) in zip(instances, blobs, strict=True):
            sop, series_uid = inst.sop_instance_uid, inst.series_uid
            entry = {"sop_uid": sop, "sop_class_uid": inst.sop_class_uid, "series_uid": series_uid}
            if sop in known:  # stored before (a re-sent instance): the stored one stays
                outcome.duplicates.append(entry)
                continue
            known.add(sop)
            row = series_rows.get(series_uid)
            if row is None:
                facts = series_facts.get(series_uid)
                row = Series(
                    id=uuid.uuid4().hex,
                    study=study,  # through the relationship: the response lists the new series too
                    series_uid=series_uid,
                    modality=getattr(facts, "modality", None),
                    description=getattr(facts, "description", None) or None,
                )
                s.add(row)
                series_rows[series_uid] = row
            s.add(Instance(sop_uid=sop, series=row, sop_class_uid=inst.sop_class_uid, blob=digest, size=size))
            outcome.stored.append(entry)
        s.flush()
        for uid, row in series_rows.items():
            facts = series_facts.get(uid)
            row.n_instances = s.scalar(
                select(func.count()).select_from(Instance).where(Instance.series_id == row.id)
            )
            if facts is not None:  # the intake's verdict on the series as now uploaded
                row.usable, row.reason = bool(facts.usable), facts.reason
        study.n_instances = sum(r.n_instances for r in series_rows.values())
        study.total_bytes = (
            s.scalar(
                select(func.coalesce(func.sum(Instance.size), 0))
                .join(Series)
                .where(Series.study_id == study.id)
            )
            or 0
        )
        if study.total_bytes > cap:  # a merge that raced another one past the cap: roll back
            raise study_too_large(study.total_bytes, cap)
        study.updated_at = now
    return outcome


def study_too_large(total: int, cap: int) -> ApiError:
    return ApiError(
        413,
        "study_too_large",
        f"the study would hold {total} bytes, more than the limit of {cap} bytes per study",
        fix="split the upload into studies, or raise LUNGCAD_MAX_STUDY_BYTES",
    )


def _check_study_size(s: Session, study_uid: str, instances: list[Any], cap: int) -> None:
    """413 when the instances not stored yet would take the study (as stored so far) past ``cap`` bytes."""
    stored = s.scalar(select(Study.total_bytes).where(Study.study_uid == study_uid)) or 0
    uids = list({i.sop_instance_uid for i in instances})
    known = set(s.scalars(select(Instance.sop_uid).where(Instance.sop_uid.in_(uids)))) if uids else set()
    fresh: dict[str, int] = {}
    for inst in instances:
        if inst.sop_instance_uid not in known:
            fresh.setdefault(inst.sop_instance_uid, Path(inst.path).stat().st_size)
    total = stored + sum(fresh.values())
    if total > cap:
        raise study_too_large(total, cap)


def get_study(s: Session, study_id: str) -> Study:
    study = s.scalar(select(Study).where(Study.id == study_id).options(selectinload(Study.series)))
    if study is None:
        raise not_found("study", study_id)
    return study


def list_studies(
    s: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    patient_id_hash: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    status: StudyState | None = None,
) -> tuple[list[Study], int]:
    """Studies newest first; ``status``: ``analysed`` (a done analysis), ``pending`` (queued / running),
    ``new`` (no analysis)."""
    q = select(Study)
    if patient_id_hash:
        q = q.where(Study.patient_id_hash == patient_id_hash)
    if date_from:
        q = q.where(Study.study_date >= date_from)
    if date_to:
        q = q.where(Study.study_date <= date_to)
    if status:
        has = select(Analysis.id).where(Analysis.study_id == Study.id)
        if status == "analysed":
            q = q.where(has.where(Analysis.status == "done").exists())
        elif status == "pending":
            q = q.where(has.where(Analysis.status.in_(["queued", "running"])).exists())
        elif status == "new":
            q = q.where(~has.exists())
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = s.scalars(
        q.options(selectinload(Study.series))
        .order_by(Study.created_at.desc(), Study.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def series_blobs(s: Session, series_uid: str) -> list[tuple[str, str]]:
    """(SOPInstanceUID, blob sha256) of one stored series, for ``Storage.link_series``."""
    rows = s.execute(
        select(Instance.sop_uid, Instance.blob).join(Series).where(Series.series_uid == series_uid)
    ).all()
    return [(r[0], r[1]) for r in rows]


def delete_study(ctx: Any, study_id: str) -> dict[str, int]:
    """Delete a study with its series, instances, analyses and the files no other row still uses."""
    with transaction(ctx.sessions) as s:
        study = s.get(Study, study_id)
        if study is None:
            raise not_found("study", study_id)
        digests = set(s.scalars(select(Instance.blob).join(Series).where(Series.study_id == study_id)).all())
        results = set(
            s.scalars(
                select(Analysis.result_dir).where(
                    Analysis.study_id == study_id, Analysis.result_dir.is_not(None)
                )
            )
        )
        n_analyses = (
            s.scalar(select(func.count()).select_from(Analysis).where(Analysis.study_id == study_id)) or 0
        )
        # the comparisons of these analyses go with them (ON DELETE CASCADE), and their report folders too
        ids = select(Analysis.id).where(Analysis.study_id == study_id)
        comparison_dirs = set(
            s.scalars(
                select(ComparisonRow.result_dir).where(
                    or_(ComparisonRow.analysis_id.in_(ids), ComparisonRow.prior_analysis_id.in_(ids)),
                    ComparisonRow.result_dir.is_not(None),
                )
            )
        )
        s.execute(Analysis.__table__.delete().where(Analysis.study_id == study_id))
        s.delete(study)
        s.flush()
        still_used = (
            set(s.scalars(select(Instance.blob).where(Instance.blob.in_(digests)))) if digests else set()
        )
        results_used = (
            set(s.scalars(select(Analysis.result_dir).where(Analysis.result_dir.in_(results))))
            if results
            else set()
        )
    removed = ctx.storage.delete_blobs(digests - still_used)
    for name in (results - results_used) | comparison_dirs:  # a comparison's folder is its own
        ctx.storage.delete_result(name)
    return {"instances": len(digests), "files_removed": removed, "analyses": n_analyses}


def iter_usable_series(study: Study) -> Iterable[Series]:
    """Usable CT series, the one with the most instances first (the default series of an analysis)."""
    return sorted((r for r in study.series if r.usable), key=lambda r: (-r.n_instances, r.series_uid))


def ingest(ctx: Any, stage: Any) -> tuple[Any, StoreOutcome]:
    """Stage an upload with ``stage(staging_dir) -> StagedStudy`` (``stage_upload`` or ``parse_stow``),
    store it, and always remove the staging folder.  Returns (the staged study, the outcome)."""
    import shutil

    folder = ctx.storage.staging_dir("upload")
    try:
        staged = stage(folder)
        return staged, store_staged(ctx, staged)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def intake_limits(ctx: Any) -> Any:
    from lungcad.service.intake_stage import IntakeLimits

    return IntakeLimits.from_settings(ctx.settings, ctx.config.preprocess)


def ingest_upload(ctx: Any, parts: Iterable[Any]) -> tuple[Any, StoreOutcome]:
    """``POST /studies``: form parts (DICOM files or zips) -> a stored study."""
    from lungcad.service.intake import stage_upload

    return ingest(ctx, lambda folder: stage_upload(parts, folder, limits=intake_limits(ctx)))


async def ingest_stow(ctx: Any, content_type: str, chunks: AsyncIterator[bytes]) -> tuple[Any, StoreOutcome]:
    """``POST /dicomweb/studies``: a STOW-RS body, parsed while it streams in, then judged and stored
    (the judging -- loading the series -- and the storing run in a worker thread)."""
    import shutil

    from starlette.concurrency import run_in_threadpool

    from lungcad.service.stow import StowReceiver

    folder = ctx.storage.staging_dir("stow")
    try:
        receiver = StowReceiver(content_type, folder, intake_limits(ctx))
        try:
            async for chunk in chunks:
                receiver.feed(chunk)
        except BaseException:
            receiver.abort()
            raise
        staged = await run_in_threadpool(receiver.finish)
        return staged, await run_in_threadpool(store_staged, ctx, staged)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
