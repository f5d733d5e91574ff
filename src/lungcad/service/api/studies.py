"""Routes: ``/studies`` -- upload (multipart form of DICOM files or one zip), list, read, delete."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from lungcad.service import audit
from lungcad.service import studies as lib
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.errors import ApiError
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, errors
from lungcad.service.schemas.studies import (
    SeriesOut,
    SkippedOut,
    StudyDeleted,
    StudyOut,
    StudyPage,
    StudyStored,
)
from lungcad.service.security import Action, Principal

router = APIRouter(prefix="/studies", tags=["studies"])

Upload = Depends(require(Action.STUDY_UPLOAD))
Read = require(Action.STUDY_READ)
Delete = Depends(require(Action.STUDY_DELETE))

_FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "DICOM Part-10 files, or one zip of them (folders are fine)",
                        }
                    },
                }
            }
        },
    }
}


def capped_body(request: Request, cap: int) -> Request:
    """The request with its body limited to ``cap`` bytes, counted as it streams (a Content-Length that
    announces more is refused before anything is read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    seen = 0
    receive = request.receive

    async def limited() -> dict:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise _too_large(cap)
        return message

    return Request(request.scope, limited)


def _too_large(cap: int) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"the request body is larger than the limit of {cap} bytes",
        fix="send one study per request, or raise LUNGCAD_MAX_UPLOAD_BYTES",
    )


def stored_response(staged: object, outcome: lib.StoreOutcome) -> StudyStored:
    study = outcome.study
    return StudyStored(
        id=study.id,
        study_uid=study.study_uid,
        created=outcome.created,
        primary_series_uid=staged.primary_series_uid,  # type: ignore[attr-defined]
        stored_instances=len(outcome.stored),
        duplicate_instances=len(outcome.duplicates),
        skipped=[SkippedOut(name=s.name, reason=s.reason) for s in staged.skipped],  # type: ignore[attr-defined]
        series=[SeriesOut.of(r) for r in study.series],
    )


@router.post(
    "",
    status_code=201,
    response_model=StudyStored,
    dependencies=[Upload],
    responses=errors(400, 413, 415, 422, 507),
    openapi_extra=_FORM_BODY,
    summary="Upload a study: DICOM files or one zip",
)
async def upload_study(request: Request, ctx: CtxDep) -> StudyStored:
    """Stores the study when it holds at least one usable CT series; the study becomes visible only once
    all of it is stored.  Parts of a study already stored are merged into it."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "POST /studies takes a multipart/form-data body",
            fix="send the files as form fields named 'files' (curl -F files=@study.zip), or use STOW-RS",
        )
    settings = ctx.settings
    limited = capped_body(request, settings.max_upload_bytes)
    try:
        form = await limited.form(max_files=settings.max_files + 16, max_fields=64)
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - starlette raises several types for a broken form body
        raise ApiError(
            400,
            "malformed_body",
            f"the multipart form cannot be parsed ({exc})",
            fix="send a multipart/form-data body with the files in fields named 'files'",
        ) from exc
    try:
        parts = [v for k, v in form.multi_items() if k == "files" and not isinstance(v, str)]
        if not parts:
            raise ApiError(
                400,
                "no_files",
                "the form has no files in a field named 'files'",
                fix="curl -F files=@study.zip ... (or several -F files=@slice.dcm)",
            )
        staged, outcome = await run_in_threadpool(lib.ingest_upload, ctx, parts)
    finally:
        await form.close()
    audit.note(request, "study", outcome.study.id, study_id=outcome.study.id)
    return stored_response(staged, outcome)


@router.get("", response_model=StudyPage, responses=errors(422), summary="List studies, newest first")
def list_studies(
    s: SessionDep,
    principal: Annotated[Principal, Depends(Read)],
    patient_id_hash: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    status: lib.StudyState | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    offset: OffsetQuery = 0,
) -> StudyPage:
    rows, total = lib.list_studies(
        s,
        limit=limit,
        offset=offset,
        patient_id_hash=patient_id_hash,
        date_from=date_from,
        date_to=date_to,
        status=status,
    )
    phi = principal.can(Action.PHI_READ)
    return StudyPage(items=[StudyOut.of(r, phi=phi) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{study_id}", response_model=StudyOut, responses=errors(404), summary="One study and its series")
def get_study(study_id: str, s: SessionDep, principal: Annotated[Principal, Depends(Read)]) -> StudyOut:
    return StudyOut.of(lib.get_study(s, study_id), phi=principal.can(Action.PHI_READ))


@router.delete(
    "/{study_id}",
    response_model=StudyDeleted,
    dependencies=[Delete],
    responses=errors(404),
    summary="Delete a study with its analyses and results",
)
def delete_study(study_id: str, ctx: CtxDep) -> StudyDeleted:
    out = lib.delete_study(ctx, study_id)
    return StudyDeleted(id=study_id, analyses=out["analyses"], files_removed=out["files_removed"])
