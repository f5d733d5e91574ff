"""Test helpers of the analyses / batches / worklist tests: studies and done analyses written straight into
the database and the data folder (no upload route, no detector), and the bundled slab stored for real."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pydicom

from lungcad.contracts import Finding, LungRads, ScanResult, ScanStatus, Texture
from lungcad.service.context import ServiceContext
from lungcad.service.db.models import Analysis, AnalysisStatus, Instance, Series, Study
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.models_registry import active_model, effective_config, record_config
from lungcad.service.security import patient_hash

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# studies were last changed before any analysis of the tests (the cache ignores results older than that)
STORED = datetime(2020, 1, 1, tzinfo=UTC)


def add_study(
    ctx: ServiceContext,
    series: list[tuple[str, int, bool]] | None = None,
    *,
    study_date: date | None = date(2024, 1, 1),
    patient_id: str = "PAT-1",
    patient_name: str = "Doe^Jane",
) -> str:
    """A study row with series rows (uid, n_instances, usable) and no instances; returns its id."""
    sid = uuid.uuid4().hex
    now = utcnow()
    with transaction(ctx.sessions) as s:
        s.add(
            Study(
                id=sid,
                study_uid=f"1.2.826.0.1.{uuid.uuid4().int % 10**20}",
                patient_id=patient_id,
                patient_name=patient_name,
                patient_id_hash=patient_hash(ctx.settings.secret_key, patient_id),
                study_date=study_date,
                created_at=now,
                updated_at=STORED,
            )
        )
        for uid, n, usable in series or [(f"1.2.3.{uuid.uuid4().int % 10**12}", 100, True)]:
            s.add(
                Series(
                    id=uuid.uuid4().hex,
                    study_id=sid,
                    series_uid=uid,
                    modality="CT" if usable else "SR",
                    n_instances=n,
                    usable=usable,
                    reason=None if usable else "not a CT image series",
                )
            )
    return sid


def store_folder(ctx: ServiceContext, folder: Path) -> str:
    """Store a DICOM folder (one CT series) for real: blobs + rows; returns the study id."""
    paths = sorted(folder.rglob("*.dcm"))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    first, now = headers[0], utcnow()
    sid, series_id = uuid.uuid4().hex, uuid.uuid4().hex
    with transaction(ctx.sessions) as s:
        s.add(
            Study(
                id=sid,
                study_uid=str(first.StudyInstanceUID),
                patient_id=str(first.get("PatientID", "")) or None,
                patient_id_hash=patient_hash(ctx.settings.secret_key, str(first.get("PatientID", ""))),
                created_at=now,
                updated_at=STORED,
                n_instances=len(paths),
            )
        )
        s.add(
            Series(
                id=series_id,
                study_id=sid,
                series_uid=str(first.SeriesInstanceUID),
                modality="CT",
                n_instances=len(paths),
                usable=True,
            )
        )
        s.flush()
        for path, h in zip(paths, headers, strict=True):
            digest, size = ctx.storage.put_file(path)
            s.add(
                Instance(
                    sop_uid=str(h.SOPInstanceUID),
                    series_id=series_id,
                    sop_class_uid=str(h.SOPClassUID),
                    blob=digest,
                    size=size,
                )
            )
    return sid


def finding(i: int, lung_rads: str = "3", p: float = 0.9, tp: float = 0.4) -> Finding:
    return Finding(
        center_xyz_mm=(10.0 + i, -20.5, -100.25 - i),
        diameter_mm=6.0 + i,
        volume_mm3=113.1 + i,
        probability=p,
        texture=Texture.SOLID,
        triage_probability=tp,
        lung_rads=LungRads(lung_rads),
    )


def defaults(ctx: ServiceContext) -> tuple[str, str]:
    """(active model sha256, its effective config hash) -- what a default POST /analyses records."""
    with ctx.sessions() as s:
        model = active_model(s)
    assert model is not None
    return model.sha256, record_config(ctx, effective_config(ctx, model))


def add_done(
    ctx: ServiceContext,
    study_id: str,
    *,
    lung_rads: str | None = "3",
    triage: float = 0.5,
    n_findings: int = 1,
    finished_at: datetime = T0,
    scan_status: str = ScanStatus.OK.value,
    status: AnalysisStatus = AnalysisStatus.DONE,
    report: bool = False,
    extra_files: dict[str, bytes] | None = None,
    batch_id: str | None = None,
) -> str:
    """A finished analysis row of the study's first series, with a result folder holding ``result.json``
    (``n_findings`` findings) and ``extra_files``; returns its id."""
    sha, config_hash = defaults(ctx)
    aid = uuid.uuid4().hex
    with transaction(ctx.sessions) as s:
        series_uid = s.get(Study, study_id).series[0].series_uid
        result = ScanResult(
            series_uid=series_uid,
            findings=[finding(i) for i in range(n_findings)],
            status=ScanStatus(scan_status),
            priority=LungRads(lung_rads) if lung_rads else None,
            config_hash=config_hash,
        )
        folder = ctx.storage.result_dir(aid)
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        for name, data in (extra_files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        s.add(
            Analysis(
                id=aid,
                study_id=study_id,
                series_uid=series_uid,
                model_sha256=sha,
                config_hash=config_hash,
                report=report,
                status=status,
                progress=1.0,
                stage="done",
                attempts=1,
                created_at=finished_at - timedelta(minutes=1),
                started_at=finished_at - timedelta(seconds=30),
                finished_at=finished_at,
                result_dir=aid if status == AnalysisStatus.DONE else None,
                scan_status=scan_status,
                lung_rads=lung_rads,
                priority_rank=LungRads(lung_rads).rank if lung_rads else -1,
                triage_probability=triage,
                n_findings=n_findings,
                batch_id=batch_id,
            )
        )
    return aid
