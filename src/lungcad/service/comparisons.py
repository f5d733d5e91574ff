"""Comparisons with a prior scan (issue 17): ``POST /comparisons`` and ``GET /comparisons/{id}``.

A comparison reads two *done* analyses: each one's ``result.json`` (the findings the indices of
``comparison.json`` refer to) and its stored series (registration needs the pixels and the lung mask).
It runs no detection, so it is done in the request (preprocessing both scans and the registration: seconds
on a server, about a minute on a loaded 2-core machine) and its document is stored in ``comparisons``.

Checks, each a 4xx with the fix: an unknown analysis (404), an analysis not done (409), the two studies
of different patients by their PatientID hash (409: comparing two patients would silently call every
nodule new or resolved), the prior study dated after the current one (422, from the library).

The report with the comparison: when the current analysis was made with ``report=true`` (its result folder
holds ``report_input.json`` / ``nodules.nii.gz``) and the request asks for it (``report``, default true),
its ``result.json``, ``report_input.json`` and ``nodules.nii.gz`` are copied into a staging folder, the
report is rendered there again with the comparison (``lungcad.report.rerender``: the comparison section,
Lung-RADS with the prior rules, coded SR content; the current series is still linked from the blobs) and
the folder is published as ``D/results/comparison-<id>`` in one rename -- a reader sees all of it or
nothing, and the analysis's own folder (shared by cached analyses) is never written.  Its files are served
by ``GET /comparisons/{id}/files[/{name}]`` with the PHI rule of analysis files (``service.results``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from lungcad.contracts import ScanResult
from lungcad.longitudinal.compare import CompareSettings, compare_scans, comparison_json
from lungcad.longitudinal.contract import Comparison
from lungcad.longitudinal.registration import RegistrationSettings
from lungcad.service import results
from lungcad.service.analyses import RESULT_FILE, get_analysis
from lungcad.service.db.models import Analysis, ComparisonRow, Study
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.errors import ApiError, conflict, not_found
from lungcad.service.models_registry import effective_config
from lungcad.service.studies import series_blobs
from lungcad.service.viewer import LABELS, REPORT_INPUT

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


# what a re-rendering reads from a result folder (result.json, the options and finding numbers of the first
# rendering, the nodule masks); a folder with one of the last two was made with report=true
REPORT_SOURCES = (RESULT_FILE, REPORT_INPUT, LABELS)


def report_source(ctx: ServiceContext, analysis_id: str) -> Path | None:
    """The result folder of a done analysis when it holds a report to render again, else None."""
    with ctx.sessions() as s:
        root = results.result_root(ctx, s, analysis_id)
    return root if any((root / name).is_file() for name in REPORT_SOURCES[1:]) else None


def render_report(
    ctx: ServiceContext,
    source: Path,
    folder: Path,
    *,
    scan: Path,
    comparison: Comparison,
    min_probability: float,
    name: str,
) -> str:
    """Render the report of ``source`` (a result folder) with ``comparison`` in the staging ``folder`` and
    publish it as the result folder ``name`` (one rename); returns ``name``.  ``source`` is only read."""
    from lungcad.report.rerender import rerender  # heavy (rendering, PDF, DICOM): only when asked

    folder.mkdir(parents=True)
    for file in REPORT_SOURCES:
        if (source / file).is_file():
            shutil.copyfile(source / file, folder / file)  # a copy, not a link: rerender rewrites two
    rerender(folder, scan=scan, comparison=comparison, min_probability=min_probability)
    if not ctx.storage.publish_result(folder, name):  # a fresh uuid: only a bug could find it taken
        raise RuntimeError(f"result folder {name} exists already")
    return name


def create_comparison(
    ctx: ServiceContext,
    analysis_id: str,
    prior_analysis_id: str,
    *,
    bspline: bool = False,
    report: bool = True,
    created_by: str | None = None,
) -> tuple[ComparisonRow, Comparison]:
    """Compare analysis ``analysis_id`` (current) with ``prior_analysis_id`` and store the document; with
    ``report`` and a report on the current analysis, also render and publish the report with the comparison
    (the row's ``result_dir``; None otherwise)."""
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
    comparison_id = uuid.uuid4().hex
    source = report_source(ctx, analysis_id) if report else None
    result_dir = None
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
        comparison.current = dataclasses.replace(comparison.current, source=f"analysis {analysis_id}")
        comparison.prior = dataclasses.replace(comparison.prior, source=f"analysis {prior_analysis_id}")
        if source is not None:  # while the current series is still linked under the staging folder
            result_dir = render_report(
                ctx,
                source,
                staging / "report",
                scan=cur_dir,
                comparison=comparison,
                min_probability=float(cfg.infer.report_threshold),
                name=f"comparison-{comparison_id}",
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    row = ComparisonRow(
        id=comparison_id,
        analysis_id=cur_row.id,
        prior_analysis_id=prior_analysis_id,
        created_at=utcnow(),
        created_by=created_by,
        document=comparison_json(comparison),
        result_dir=result_dir,
    )
    try:
        with transaction(ctx.sessions) as s:
            s.add(row)
    except BaseException:
        if result_dir is not None:  # no row refers to it
            ctx.storage.delete_result(result_dir)
        raise
    return row, comparison


def get_comparison(s: Session, comparison_id: str) -> tuple[ComparisonRow, Comparison]:
    row = s.get(ComparisonRow, comparison_id)
    if row is None:
        raise not_found("comparison", comparison_id)
    return row, Comparison.from_dict(json.loads(row.document))


def comparison_study(s: Session, comparison_id: str) -> str | None:
    """The study of the comparison's current analysis (for the audit row); None for an unknown id."""
    row = s.get(ComparisonRow, comparison_id)
    analysis = s.get(Analysis, row.analysis_id) if row is not None else None
    return analysis.study_id if analysis is not None else None


def comparison_root(ctx: ServiceContext, s: Session, comparison_id: str) -> Path:
    """The folder of the comparison's report: 404 unknown comparison, 409 none was rendered, 410 gone."""
    row, _ = get_comparison(s, comparison_id)
    if row.result_dir is None:
        raise conflict(
            f"comparison {comparison_id} has no files: no report was rendered with it",
            fix="create the comparison with report=true of a current analysis made with report=true",
        )
    root = ctx.storage.result_dir(row.result_dir)
    if not root.is_dir():
        raise ApiError(410, "gone", f"the files of comparison {comparison_id} are gone", fix="compare again")
    return root


def comparison_files(ctx: ServiceContext, s: Session, comparison_id: str) -> list[tuple[str, int, str]]:
    """(name relative to the comparison's folder, bytes, media type) of every file, sorted by name."""
    return results.folder_files(comparison_root(ctx, s, comparison_id))


def comparison_file(ctx: ServiceContext, s: Session, comparison_id: str, name: str) -> tuple[Path, str]:
    """The path and media type of one file of the comparison's folder (the checks of analysis files)."""
    return results.folder_file(
        lambda: comparison_root(ctx, s, comparison_id),
        name,
        owner=f"comparison {comparison_id}",
        listing="/api/v1/comparisons/{id}/files",
    )
