"""Routes: ``/comparisons`` -- compare a done analysis with a prior one (issue 17), read it back, and fetch
the files of the report rendered with it.

Creating one needs ``analysis.create`` (it computes, like creating an analysis); reading needs
``analysis.read``, and a file that names the patient (the report, the DICOM objects) also ``phi.read`` --
the rule of analysis files (``lungcad.service.results``).  Each route calls one function of
``lungcad.service.comparisons``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import FileResponse

from lungcad.service import audit, results
from lungcad.service import comparisons as lib
from lungcad.service.db.models import Analysis
from lungcad.service.db.session import as_utc
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import errors
from lungcad.service.schemas.analyses import ResultFile
from lungcad.service.schemas.comparisons import ComparisonFiles, PriorComparisonCreate, PriorComparisonOut
from lungcad.service.security import Action, Principal

router = APIRouter(prefix="/comparisons", tags=["comparisons"])

Creator = Annotated[Principal, Depends(require(Action.ANALYSIS_CREATE))]
Read = Depends(require(Action.ANALYSIS_READ))
Reader = Annotated[Principal, Read]
REPORT_HTML = "report/report.html"


def _out(row, comparison) -> PriorComparisonOut:  # type: ignore[no-untyped-def]
    return PriorComparisonOut(
        id=row.id,
        analysis_id=row.analysis_id,
        prior_analysis_id=row.prior_analysis_id,
        created_at=as_utc(row.created_at),
        report=REPORT_HTML if row.result_dir else None,
        comparison=comparison,
    )


def _note(request: Request, s: SessionDep, comparison_id: str, name: str | None = None) -> None:
    """The audit row's resource, as for analysis files: the comparison (or ``comparison-<id>/<name>``, a
    download) and the current analysis's study, so ``GET /admin/audit?study_id=`` finds the read."""
    study_id = lib.comparison_study(s, comparison_id)
    if name is None:
        audit.note(request, "comparison", comparison_id, study_id=study_id)
    else:
        audit.note(request, "file", f"comparison-{comparison_id}/{name}"[:200], study_id=study_id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PriorComparisonOut,
    responses=errors(404, 409, 410, 422),
    summary="Compare a done analysis with a prior one (registration, matching, growth, Lung-RADS)",
)
def create_comparison(
    body: PriorComparisonCreate, ctx: CtxDep, request: Request, principal: Creator
) -> PriorComparisonOut:
    """Register the prior scan onto the current one, match the nodules and classify each (new, stable,
    growing, shrinking, resolved) with doubling time and Lung-RADS v2022 with priors.  Both analyses must
    be done and of one patient.  With ``report`` (default) and a current analysis made with
    ``report=true``, its report is rendered again with the comparison section (and the SR with the coded
    comparison): ``GET /comparisons/{id}/files``."""
    row, comparison = lib.create_comparison(
        ctx,
        body.analysis_id,
        body.prior_analysis_id,
        bspline=body.bspline,
        report=body.report,
        created_by=principal.prefix,
    )
    with ctx.sessions() as s:
        study_id = s.get(Analysis, row.analysis_id).study_id  # type: ignore[union-attr]
    audit.note(request, "comparison", row.id, study_id=study_id)
    return _out(row, comparison)


@router.get(
    "/{comparison_id}",
    response_model=PriorComparisonOut,
    dependencies=[Read],
    responses=errors(404),
    summary="One stored comparison",
)
def get_comparison(comparison_id: str, s: SessionDep) -> PriorComparisonOut:
    return _out(*lib.get_comparison(s, comparison_id))


@router.get(
    "/{comparison_id}/files",
    response_model=ComparisonFiles,
    responses=errors(404, 409, 410),
    summary="The files of the report rendered with a comparison (without PHI: only the de-identified ones)",
)
def list_files(
    comparison_id: str, ctx: CtxDep, s: SessionDep, request: Request, principal: Reader
) -> ComparisonFiles:
    _note(request, s, comparison_id)
    files = results.visible_files(  # only what this caller may download
        lib.comparison_files(ctx, s, comparison_id), may_read_phi=principal.can(Action.PHI_READ)
    )
    return ComparisonFiles(
        comparison_id=comparison_id, files=[ResultFile(name=n, size=z, media_type=t) for n, z, t in files]
    )


@router.get(
    "/{comparison_id}/files/{name:path}",
    response_class=FileResponse,
    response_model=None,  # a file: its media type is the file's (report.pdf, sr.dcm, figures/*.png)
    responses={
        200: results.FILE_RESPONSE,
        **errors(400, 404, 409, 410),
    },
    summary="One file of the report rendered with a comparison",
)
def get_file(
    comparison_id: str, name: str, ctx: CtxDep, s: SessionDep, request: Request, principal: Reader
) -> FileResponse:
    _note(request, s, comparison_id, name)
    results.check_phi(name, may_read_phi=principal.can(Action.PHI_READ))
    path, media = lib.comparison_file(ctx, s, comparison_id, name)
    # nosniff: a browser must not run a file as anything but its declared type
    return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff"})
