"""Routes: ``/analyses/{id}/volume.nii.gz`` and ``/analyses/{id}/labels.nii.gz`` -- what the dashboard's CT
viewer loads (``lungcad.service.viewer``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from lungcad.service import viewer as lib
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.schemas import errors
from lungcad.service.schemas.viewer import ViewerFinding, ViewerFindings
from lungcad.service.security import Action

router = APIRouter(prefix="/analyses", tags=["viewer"])

_NIFTI = {
    200: {
        "description": "a gzipped NIfTI-1 file",
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}


@router.get(
    "/{analysis_id}/volume.nii.gz",
    response_class=FileResponse,
    response_model=None,
    dependencies=[Depends(require(Action.STUDY_READ))],
    responses={**_NIFTI, **errors(404, 410)},
    summary="The analysed series as NIfTI (int16 HU, the input grid) for the viewer",
)
def get_volume(analysis_id: str, ctx: CtxDep, s: SessionDep) -> FileResponse:
    found = lib.analysis_volume(ctx, s, analysis_id)
    return FileResponse(found.path, media_type="application/gzip", headers=_HEADERS)


@router.get(
    "/{analysis_id}/labels.nii.gz",
    response_class=FileResponse,
    response_model=None,
    dependencies=[Depends(require(Action.ANALYSIS_READ))],
    responses={**_NIFTI, **errors(404, 409, 410)},
    summary="The nodule label map (label n = finding n of the report) on the volume's grid",
)
def get_labels(analysis_id: str, ctx: CtxDep, s: SessionDep) -> FileResponse:
    found = lib.analysis_labels(ctx, s, analysis_id)
    headers = {**_HEADERS, "X-Lungcad-Labels": "stored" if found.labels_stored else "none"}
    return FileResponse(found.path, media_type="application/gzip", headers=headers)


@router.get(
    "/{analysis_id}/shown-findings",
    response_model=ViewerFindings,
    dependencies=[Depends(require(Action.ANALYSIS_READ))],
    responses=errors(404, 409, 410),
    summary="The findings the report shows, numbered as the report, the label map, SEG and SR number them",
)
def get_shown_findings(analysis_id: str, ctx: CtxDep, s: SessionDep) -> ViewerFindings:
    result, threshold, shown = lib.shown(ctx, s, analysis_id)
    return ViewerFindings(
        analysis_id=analysis_id,
        scan_status=result.status,
        min_probability=threshold,
        n_candidates=len(result.findings),
        findings=[
            ViewerFinding(
                number=sf.number,
                index=sf.index,
                label=sf.label,
                center_xyz_mm=tuple(float(v) for v in sf.finding.center_xyz_mm),
                diameter_mm=sf.finding.diameter_mm,
                texture=sf.finding.texture,
                lung_rads=sf.finding.lung_rads,
                probability=sf.finding.probability,
                triage_probability=sf.finding.triage_probability,
                lesion_kind=sf.finding.lesion_kind,
            )
            for sf in shown
        ],
    )
