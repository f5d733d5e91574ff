"""Test helpers for the job tests (and any test that needs a stored series and a queued analysis):

* ``store_series(ctx, folder)``: a DICOM folder stored for real (blobs + Study/Series/Instance rows), by
  ``helpers_analyses.store_folder``; returns (study id, series uid).
* ``renamed_copy(folder, dst, n)``: a copy of a DICOM series with new Study/Series/SOP Instance UIDs (the
  n-th distinct copy), so one slab gives several series that the cache does not merge.
* ``add_analysis(ctx, study_id, series_uid)``: a ``queued`` analysis row as ``POST /analyses`` writes it
  (active model, its effective configuration recorded), without the route and without enqueuing.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from lungcad.service.context import ServiceContext
from lungcad.service.db.models import Analysis, AnalysisStatus, Series
from lungcad.service.db.session import transaction, utcnow
from tests.service.helpers_analyses import defaults, store_folder

UID_PREFIX = "1.2.826.0.1.3680043.10.1138."  # a test root; generate_uid appends a hash of the entropy


def store_series(ctx: ServiceContext, folder: Path) -> tuple[str, str]:
    """Store the CT series under ``folder``; returns (study id, series uid)."""
    study_id = store_folder(ctx, folder)
    with ctx.sessions() as s:
        series_uid = s.query(Series.series_uid).filter(Series.study_id == study_id).scalar()
    return study_id, series_uid


def renamed_copy(folder: Path, dst: Path, n: int, *, limit: int | None = None) -> Path:
    """``folder``'s DICOM files (the first ``limit``) under ``dst`` with UIDs of copy ``n`` (same pixels,
    another identity).  ``limit=2``: a real but unusable series (too few slices for a CT volume)."""
    dst.mkdir(parents=True, exist_ok=True)
    study, series = (generate_uid(UID_PREFIX, [str(folder), kind, str(n)]) for kind in ("study", "series"))
    for path in sorted(folder.rglob("*.dcm"))[:limit]:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        sop = generate_uid(UID_PREFIX, [str(ds.SOPInstanceUID), str(n)])
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.save_as(dst / path.name)
    return dst


def add_analysis(ctx: ServiceContext, study_id: str, series_uid: str, *, report: bool = False) -> str:
    """A queued analysis of the series under the active model; returns its id (nothing enqueued)."""
    sha, config_hash = defaults(ctx)
    aid = uuid.uuid4().hex
    with transaction(ctx.sessions) as s:
        s.add(
            Analysis(
                id=aid,
                study_id=study_id,
                series_uid=series_uid,
                model_sha256=sha,
                config_hash=config_hash,
                report=report,
                status=AnalysisStatus.QUEUED,
                progress=0.0,
                attempts=0,
                created_at=utcnow(),
            )
        )
    return aid


def row(ctx: ServiceContext, analysis_id: str) -> Analysis | None:
    """The analysis row as it is now (detached)."""
    with ctx.sessions() as s:
        return s.get(Analysis, analysis_id)
