"""The result of a done analysis: its ``result.json`` (with a strong ETag) and the files of its folder.

A result folder is published in one rename (``Storage.publish_result``) and shared by cached analyses of the
same inputs; a file name from a client may hold sub-folders (``key_images/f1.png``) but is checked never to
leave that folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
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


def _result_root(ctx: ServiceContext, s: Session, analysis_id: str) -> Path:
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
    path = _result_root(ctx, s, analysis_id) / RESULT_FILE
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


def result_files(ctx: ServiceContext, s: Session, analysis_id: str) -> list[tuple[str, int, str]]:
    """(name relative to the result folder, bytes, media type) of every file, sorted by name."""
    root = _result_root(ctx, s, analysis_id)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return [(p.relative_to(root).as_posix(), p.stat().st_size, media_type(p.name)) for p in files]


def result_file(ctx: ServiceContext, s: Session, analysis_id: str, name: str) -> tuple[Path, str]:
    """The path and media type of one file of the result folder.  ``name`` may hold sub-folders but can
    never leave the folder: absolute names and ``..`` are refused (400), anything resolving outside it
    (a link) is not found (404)."""
    parts = name.split("/")
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or ".." in parts:
        raise ApiError(
            400,
            "bad_file_name",
            f"file name {name!r} is not a relative name inside the result folder",
            fix="use a name from GET /api/v1/analyses/{id}/files",
        )
    root = _result_root(ctx, s, analysis_id).resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise ApiError(
            404,
            "not_found",
            f"analysis {analysis_id} has no file {name!r}",
            fix="list them with GET .../files",
        )
    return target, media_type(target.name)
