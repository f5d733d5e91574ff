"""The result of a done analysis: its ``result.json`` (with a strong ETag) and the files of its folder.

A result folder is published in one rename (``Storage.publish_result``) and shared by cached analyses of the
same inputs; a file name from a client may hold sub-folders (``key_images/f1.png``) but is checked never to
leave that folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from lungcad.service.analyses import RESULT_FILE, get_analysis
from lungcad.service.db.models import AnalysisStatus
from lungcad.service.errors import ApiError, conflict

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext


@dataclass(frozen=True)
class ResultDocument:
    body: bytes  # result.json as written
    etag: str  # strong ETag: '"<sha256 of body>"'


def result_root(ctx: ServiceContext, s: Session, analysis_id: str) -> Path:
    """The result folder of a done analysis (409 while not done, 410 when its files were removed)."""
    row, _ = get_analysis(s, analysis_id)
    if row.status != AnalysisStatus.DONE:
        err = conflict(
            f"analysis {analysis_id} is {row.status.value}, not done"
            + (f" ({row.error})" if row.error else ""),
            fix="poll GET /api/v1/analyses/{id} until status is done",
        )
        err.extra["status"] = row.status.value
        raise err
    root = ctx.storage.result_dir(row.result_dir) if row.result_dir else None
    if root is None or not root.is_dir():
        raise ApiError(
            410, "gone", f"the result files of analysis {analysis_id} are gone", fix="analyse again"
        )
    return root


def result_document(ctx: ServiceContext, s: Session, analysis_id: str) -> ResultDocument:
    """``result.json`` of a done analysis, with its ETag."""
    path = result_root(ctx, s, analysis_id) / RESULT_FILE
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise ApiError(
            410, "gone", f"analysis {analysis_id} has no {RESULT_FILE}", fix="analyse again"
        ) from None
    return ResultDocument(body, f'"{hashlib.sha256(body).hexdigest()}"')


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag equal to ``etag`` (weak comparison, as the RFC asks
    for this header)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in {t.removeprefix("W/") for t in tags}


MEDIA_TYPES = {
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".dcm": "application/dicom",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".nii.gz": "application/gzip",
    ".nii": "application/octet-stream",
}


# The 200 response of a route that sends one result file (analysis or comparison files): OpenAPI lists
# every media type a result folder can hold.
FILE_RESPONSE = {
    "description": "the file's bytes (the report and the DICOM objects name the patient: phi.read)",
    "content": {
        t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(set(MEDIA_TYPES.values()))
    },
}


def media_type(name: str) -> str:
    lower = name.lower()
    for suffix, kind in MEDIA_TYPES.items():
        if lower.endswith(suffix) and not (suffix == ".nii" and lower.endswith(".nii.gz")):
            return kind
    return "application/octet-stream"


# Files of a result folder that carry no patient identifiers: the result, tables, label maps and rendered
# figures (tests/service/test_phi.py greps each one of a PHI-laden study).  Everything else -- the clinician
# report (HTML / PDF) and the DICOM SEG / SR / Encapsulated PDF, which copy the patient module as the
# standard requires -- is for roles with phi.read.  An allowlist: a new kind of output counts as PHI until it
# is added here.
DEIDENTIFIED_FILES = (
    "result.json",
    "candidates.csv",
    "nodules.json",
    "nodules.nii.gz",
    "report_input.json",
    "key_images/*.png",
    "masks/*.nii.gz",
    "report/figures/*.png",
    "report/lungs_3d.html",
)


def carries_phi(name: str) -> bool:
    """``report/report.pdf`` / ``dicom/sr.dcm`` -> True; ``result.json`` / ``key_images/f1.png`` -> False."""
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in DEIDENTIFIED_FILES)


def phi_forbidden(name: str) -> ApiError:
    return ApiError(
        403,
        "forbidden",
        f"{name!r} carries patient identifiers; this key's role may not read them",
        fix="use a key of a role with phi.read (radiologist, admin); "
        "de-identified files: result.json, candidates.csv, key images, figures",
    )


def check_phi(name: str, *, may_read_phi: bool) -> None:
    """403 (:func:`phi_forbidden`) when ``name`` carries patient identifiers and the caller lacks phi.read."""
    if carries_phi(name) and not may_read_phi:
        raise phi_forbidden(name)


def visible_files(files: list[tuple[str, int, str]], *, may_read_phi: bool) -> list[tuple[str, int, str]]:
    """The entries of a listing the caller may download: without phi.read, only the de-identified ones."""
    return files if may_read_phi else [f for f in files if not carries_phi(f[0])]


def folder_files(root: Path) -> list[tuple[str, int, str]]:
    """(name relative to ``root``, bytes, media type) of every file under ``root``, sorted by name."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return [(p.relative_to(root).as_posix(), p.stat().st_size, media_type(p.name)) for p in files]


def folder_file(root_of: Callable[[], Path], name: str, *, owner: str, listing: str) -> tuple[Path, str]:
    """The path and media type of the file ``name`` of the folder ``root_of()`` returns (an analysis's
    result folder, a comparison's report folder).  ``name`` may hold sub-folders but can never leave the
    folder: absolute names, backslashes, NUL and ``..`` are refused (400), anything resolving outside it (a
    link) is not found (404).  ``owner`` ("analysis <id>") and ``listing`` (the route that lists the names)
    go into the messages.  The name is judged before ``root_of`` runs, so a bad name is a 400 whatever the
    state of the folder's owner (404 / 409 / 410 come from ``root_of``)."""
    parts = name.split("/")
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or ".." in parts:
        raise ApiError(
            400,
            "bad_file_name",
            f"file name {name!r} is not a relative name inside the result folder",
            fix=f"use a name from GET {listing}",
        )
    root = root_of().resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise ApiError(404, "not_found", f"{owner} has no file {name!r}", fix=f"list them with GET {listing}")
    return target, media_type(target.name)


def result_files(ctx: ServiceContext, s: Session, analysis_id: str) -> list[tuple[str, int, str]]:
    """(name relative to the result folder, bytes, media type) of every file, sorted by name."""
    return folder_files(result_root(ctx, s, analysis_id))


def result_file(ctx: ServiceContext, s: Session, analysis_id: str, name: str) -> tuple[Path, str]:
    """The path and media type of one file of the result folder (the checks of :func:`folder_file`)."""
    return folder_file(
        lambda: result_root(ctx, s, analysis_id),
        name,
        owner=f"analysis {analysis_id}",
        listing="/api/v1/analyses/{id}/files",
    )
