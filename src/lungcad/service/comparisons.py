"""Comparisons with a prior scan (issue 17): ``POST /comparisons`` and ``GET /comparisons/{id}``.

A comparison reads two *done* analyses: each one's ``result.json`` (the findings the indices of
``comparison.json`` refer to) and its stored series (registration needs the pixels and the lung mask).
It runs no detection, so it is done in the request (preprocessing both scans and the registration: seconds
on a server, about a minute on a loaded 2-core machine) and its document is stored in ``comparisons``.

Checks, each a 4xx with the fix: an unknown analysis (404), an analysis not done (409), the two studies
of different patients by their PatientID hash (409: comparing two patients would silently call every
nodule new or resolved), the prior study dated after the current one (422, from the library).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from lungcad.contracts import ScanResult
from lungcad.longitudinal.compare import CompareSettings, compare_scans, comparison_json
from lungcad.longitudinal.contract import Comparison
from lungcad.longitudinal.registration import RegistrationSettings
from lungcad.service import results
from lungcad.service.analyses import get_analysis
from lungcad.service.db.models import ComparisonRow, Study
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.errors import ApiError, conflict, not_found
from lungcad.service.models_registry import effective_config
from lungcad.service.studies import series_blobs

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext


def _read(ctx: ServiceContext, s: Session, analysis_id: str):  # type: ignore[no-untyped-def]
    row, model = get_analysis(s, analysis_id)  # 404
    doc = results.result_document(ctx, s, analysis_id)  # 409 not done, 410 files gone
    result = ScanResult.from_dict(json.loads(doc.body))
    study = s.get(Study, row.study_id)
    blobs = series_blobs(s, row.series_uid)
    cfg = effective_config(ctx, model) if model is not None else ctx.config
    return row, result, study, blobs, cfg


def create_comparison(
    ctx: ServiceContext,
    analysis_id: str,
    prior_analysis_id: str,
    *,
    bspline: bool = False,
    created_by: str | None = None,
) -> tuple[ComparisonRow, Comparison]:
    """Compare analysis ``analysis_id`` (current) with ``prior_analysis_id`` and store the document."""
    with ctx.sessions() as s:
        cur_row, cur_result, cur_study, cur_blobs, cfg = _read(ctx, s, analysis_id)
        _, pri_result, pri_study, pri_blobs, _ = _read(ctx, s, prior_analysis_id)
        if (
            cur_study is not None
            and pri_study is not None
            and cur_study.patient_id_hash
            and pri_study.patient_id_hash
            and cur_study.patient_id_hash != pri_study.patient_id_hash
        ):
            raise conflict(
                "the two analyses are of studies of different patients",
                fix="compare an analysis with a prior analysis of the same patient",
            )
    for aid, blobs in ((analysis_id, cur_blobs), (prior_analysis_id, pri_blobs)):
        if not blobs:
            raise ApiError(
                410, "gone", f"the series of analysis {aid} has no stored instances", fix="upload it again"
            )
    staging = ctx.storage.staging_dir("comparison")
    try:
        cur_dir = ctx.storage.link_series(cur_blobs, staging / "current")
        pri_dir = ctx.storage.link_series(pri_blobs, staging / "prior")

        settings = CompareSettings(
            registration=RegistrationSettings(bspline=bspline),
            min_probability=float(cfg.infer.report_threshold),
        )
        comparison, _, _ = compare_scans(
            cur_dir,
            pri_dir,
            current_result=cur_result,
            prior_result=pri_result,
            settings=settings,
            preprocess=cfg.preprocess,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    comparison.current = dataclasses.replace(comparison.current, source=f"analysis {analysis_id}")
    comparison.prior = dataclasses.replace(comparison.prior, source=f"analysis {prior_analysis_id}")
    row = ComparisonRow(
        id=uuid.uuid4().hex,
        analysis_id=cur_row.id,
        prior_analysis_id=prior_analysis_id,
        created_at=utcnow(),
        created_by=created_by,
        document=comparison_json(comparison),
    )
    with transaction(ctx.sessions) as s:
        s.add(row)
    return row, comparison


def get_comparison(s: Session, comparison_id: str) -> tuple[ComparisonRow, Comparison]:
    row = s.get(ComparisonRow, comparison_id)
    if row is None:
        raise not_found("comparison", comparison_id)
    return row, Comparison.from_dict(json.loads(row.document))
