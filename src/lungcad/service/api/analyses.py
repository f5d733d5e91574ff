"""Routes: ``/analyses`` -- create (or reuse a cached result), poll, list, cancel, fetch the result and files.

Each route checks the caller's permission and calls one function of ``lungcad.service.analyses`` or
``lungcad.service.results``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status
from fastapi.responses import FileResponse

from lungcad.contracts import ScanResult
from lungcad.service import analyses as lib
from lungcad.service import audit, results
from lungcad.service.db.models import AnalysisStatus
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, errors
from lungcad.service.schemas.analyses import (
    AnalysisCreate,
    AnalysisCreated,
    AnalysisOut,
    AnalysisPage,
    ResultFile,
    ResultFiles,
)
from lungcad.service.security import Action, Principal

router = APIRouter(prefix="/analyses", tags=["analyses"])

Create = Depends(require(Action.ANALYSIS_CREATE))
Read = Depends(require(Action.ANALYSIS_READ))
Reader = Annotated[Principal, Read]
Cancel = Depends(require(Action.ANALYSIS_CANCEL))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalysisCreated,
    dependencies=[Create],
    responses=errors(404, 409, 422, 503),
    summary="Analyse one series of a stored study",
)
def create_analysis(body: AnalysisCreate, ctx: CtxDep, request: Request) -> AnalysisCreated:
    """Queue a detection job, or reuse the result of the same series, model and configuration (then the
    new analysis is ``done`` at once with ``cached: true``)."""
    row = lib.create_analysis(
        ctx,
        study_id=body.study_id,
        series_uid=body.series_uid,
        model=body.model,
        report=body.report,
        risk=body.risk.options() if body.risk is not None else None,
    )
    audit.note(request, "analysis", row.id, study_id=row.study_id)
    return AnalysisCreated(id=row.id, status=row.status, cached=row.cached)


@router.get(
    "",
    response_model=AnalysisPage,
    dependencies=[Read],
    responses=errors(422),
    summary="List analyses, newest first",
)
def list_analyses(
    s: SessionDep,
    status: AnalysisStatus | None = None,
    study_id: str | None = None,
    batch_id: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    offset: OffsetQuery = 0,
) -> AnalysisPage:
    rows, total = lib.list_analyses(
        s, status=status, study_id=study_id, batch_id=batch_id, limit=limit, offset=offset
    )
    return AnalysisPage(
        items=[AnalysisOut.of(a, m) for a, m in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{analysis_id}",
    response_model=AnalysisOut,
    dependencies=[Read],
    responses=errors(404),
    summary="The state of one analysis (status, progress, stage, error)",
)
def get_analysis(analysis_id: str, s: SessionDep) -> AnalysisOut:
    return AnalysisOut.of(*lib.get_analysis(s, analysis_id))


@router.post(
    "/{analysis_id}/cancel",
    response_model=AnalysisOut,
    dependencies=[Cancel],
    responses=errors(404, 409),
    summary="Cancel a queued or running analysis",
)
def cancel_analysis(analysis_id: str, ctx: CtxDep) -> AnalysisOut:
    return AnalysisOut.of(*lib.cancel_analysis(ctx, analysis_id))


@router.get(
    "/{analysis_id}/result",
    response_model=ScanResult,
    dependencies=[Read],
    responses={
        200: {"description": "result.json as written, with a strong ETag (sha256 of its bytes)"},
        **errors(304, 404, 409, 410),
    },
    summary="The ScanResult of a done analysis",
)
def get_result(
    analysis_id: str,
    ctx: CtxDep,
    s: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The bytes of ``result.json`` (the same as ``lungcad detect`` writes); ``If-None-Match`` with the
    ETag of an earlier response gives 304 without a body."""
    doc = results.result_document(ctx, s, analysis_id)
    headers = {"ETag": doc.etag, "Cache-Control": "private, no-cache"}
    if results.etag_matches(if_none_match, doc.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(doc.body, media_type="application/json", headers=headers)


@router.get(
    "/{analysis_id}/files",
    response_model=ResultFiles,
    responses=errors(404, 409, 410),
    summary="The files of a done analysis's result folder (without PHI: only the de-identified ones)",
)
def list_files(analysis_id: str, ctx: CtxDep, s: SessionDep, principal: Reader) -> ResultFiles:
    files = results.visible_files(  # only what this caller may download
        results.result_files(ctx, s, analysis_id), may_read_phi=principal.can(Action.PHI_READ)
    )
    return ResultFiles(
        analysis_id=analysis_id, files=[ResultFile(name=n, size=z, media_type=t) for n, z, t in files]
    )


@router.get(
    "/{analysis_id}/files/{name:path}",
    response_class=FileResponse,
    response_model=None,  # a file: its media type is the file's (report.pdf, seg.dcm, key_images/*.png)
    responses={
        200: results.FILE_RESPONSE,
        **errors(400, 404, 409, 410),
    },
    summary="One file of a done analysis's result folder",
)
def get_file(analysis_id: str, name: str, ctx: CtxDep, s: SessionDep, principal: Reader) -> FileResponse:
    results.check_phi(name, may_read_phi=principal.can(Action.PHI_READ))
    path, media = results.result_file(ctx, s, analysis_id, name)
    # nosniff: a browser must not run a file as anything but its declared type
    return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff"})
