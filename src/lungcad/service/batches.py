"""Batches: one analysis per study, created together (all or none), followed as one unit, and their
findings as one CSV table.

The progress of a batch is the mean of its analyses' progress, a finished one (done, failed or cancelled)
counting 1, so it reaches 1 exactly when nothing is left to run.  The CSV holds no PHI: studies are named by
the service's id, not by patient, accession or StudyInstanceUID.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lungcad.service.analyses import RESULT_FILE, create_analyses
from lungcad.service.db.models import Analysis, AnalysisStatus, Batch
from lungcad.service.db.session import as_utc
from lungcad.service.errors import not_found

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

CSV_COLUMNS = (
    "study_id",
    "series_uid",
    "analysis_id",
    "finding_index",
    "x_mm",
    "y_mm",
    "z_mm",
    "diameter_mm",
    "volume_mm3",
    "texture",
    "lung_rads",
    "probability",
    "triage_probability",
)


@dataclass(frozen=True)
class BatchSummary:
    id: str
    created_at: datetime
    counts: dict[AnalysisStatus, int]
    progress: float
    analysis_ids: list[str]

    @property
    def finished(self) -> bool:
        return all(n == 0 for st, n in self.counts.items() if not st.finished)


def create_batch(
    ctx: ServiceContext, study_ids: list[str], *, model: str | None = None, report: bool = False
) -> BatchSummary:
    """One analysis of each study's default series (a repeated id is analysed once)."""
    unique = list(dict.fromkeys(study_ids))
    batch, _rows = create_analyses(
        ctx, [(sid, None) for sid in unique], model=model, report=report, batch=True
    )
    assert batch is not None
    with ctx.sessions() as s:
        return batch_summary(s, batch.id)


def batch_summary(s: Session, batch_id: str) -> BatchSummary:
    batch = s.get(Batch, batch_id)
    if batch is None:
        raise not_found("batch", batch_id)
    rows = s.execute(
        select(Analysis.id, Analysis.status, Analysis.progress)
        .where(Analysis.batch_id == batch_id)
        .order_by(Analysis.created_at, Analysis.id)
    ).all()
    counts = {st: 0 for st in AnalysisStatus}
    total = 0.0
    for _id, st, progress in rows:
        counts[st] += 1
        total += 1.0 if st.finished else min(max(progress or 0.0, 0.0), 1.0)
    return BatchSummary(
        id=batch.id,
        created_at=as_utc(batch.created_at),
        counts=counts,
        progress=total / len(rows) if rows else 1.0,
        analysis_ids=[r[0] for r in rows],
    )


def _finding_rows(analysis: Analysis, doc: dict[str, Any], min_probability: float) -> list[list[Any]]:
    out = []
    for index, f in enumerate(doc.get("findings", [])):
        if (f.get("probability") or 0.0) < min_probability:
            continue
        x, y, z = f["center_xyz_mm"]
        out.append(
            [
                analysis.study_id,
                analysis.series_uid,
                analysis.id,
                index,
                x,
                y,
                z,
                f.get("diameter_mm"),
                f.get("volume_mm3"),
                f.get("texture"),
                f.get("lung_rads"),
                f.get("probability"),
                f.get("triage_probability"),
            ]
        )
    return out


def batch_findings_csv(
    ctx: ServiceContext, s: Session, batch_id: str, *, min_probability: float = 0.0
) -> str:
    """Every finding of every done analysis of the batch, one row each (``CSV_COLUMNS``), in the batch's
    order; ``finding_index`` is the finding's index in its ``result.json``."""
    if s.get(Batch, batch_id) is None:
        raise not_found("batch", batch_id)
    done = s.scalars(
        select(Analysis)
        .where(Analysis.batch_id == batch_id, Analysis.status == AnalysisStatus.DONE)
        .order_by(Analysis.created_at, Analysis.id)
    ).all()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for analysis in done:
        path = ctx.storage.result_dir(analysis.result_dir) / RESULT_FILE if analysis.result_dir else None
        if path is None or not path.is_file():
            continue  # its files were removed (the study was deleted meanwhile): nothing to list
        writer.writerows(_finding_rows(analysis, json.loads(path.read_bytes()), min_probability))
    return buf.getvalue()
