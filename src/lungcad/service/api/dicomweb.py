"""Routes: DICOMweb STOW-RS (PS3.18 10.5) -- ``POST /dicomweb/studies`` for PACS and modality pushes.

The body is ``multipart/related; type="application/dicom"``, one DICOM instance per part, parsed while it
streams in.  The response is the PS3.18 STOW-RS response dataset in DICOM JSON: 200 when every instance
was stored, 202 when some were set aside (listed in FailedSOPSequence with a reason code), 4xx with the
service's JSON error body when nothing could be stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from lungcad.service import audit
from lungcad.service import studies as lib
from lungcad.service.api.studies import capped_body
from lungcad.service.deps import CtxDep, require
from lungcad.service.schemas import errors
from lungcad.service.security import Action
from lungcad.service.stow import stow_response, stow_status

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

DICOM_JSON = "application/dicom+json"
_STOW_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            'multipart/related; type="application/dicom"': {
                "schema": {"type": "string", "format": "binary"},
            }
        },
    }
}


@router.post(
    "/studies",
    status_code=200,
    response_model=dict[str, Any],
    dependencies=[Depends(require(Action.STUDY_UPLOAD))],
    responses={
        202: {"description": "stored, with some instances set aside", "model": dict[str, Any]},
        **errors(400, 413, 415, 422, 507),
    },
    openapi_extra=_STOW_BODY,
    summary="STOW-RS: store DICOM instances",
)
async def stow_studies(request: Request, ctx: CtxDep) -> JSONResponse:
    limited = capped_body(request, ctx.settings.max_upload_bytes)
    staged, outcome = await lib.ingest_stow(ctx, request.headers.get("content-type", ""), limited.stream())
    audit.note(request, "study", outcome.study.id, study_id=outcome.study.id)
    base = str(request.url_for("stow_studies")).removesuffix("/studies")
    return JSONResponse(stow_response(staged, base), status_code=stow_status(staged), media_type=DICOM_JSON)
