"""What the dashboard's CT viewer loads: the analysed series as one NIfTI volume and the nodule label map.

The volume is the series on its *input* grid (``lungcad.io.load_ct`` of the stored instances, the same
reading the detector does), in HU as int16 -- the grid of ``nodules.nii.gz`` (label ``n`` = finding ``n`` of
the report), so overlay and markers line up voxel for voxel.  Neither file names the patient: NIfTI carries
geometry and voxels only.

Reading and gzipping a whole chest CT takes seconds, so the NIfTI is kept in ``D/viewer/`` under a name
derived from the series' blob digests (content-addressed: new instances merged into the series give a new
name) and at most ``KEEP`` volumes stay there (oldest first out).  An analysis made without the report has
no label map; the viewer then gets an all-zero map on the same grid (``X-Lungcad-Labels: none``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from lungcad.contracts import ScanResult
from lungcad.service.analyses import get_analysis
from lungcad.service.errors import ApiError
from lungcad.service.results import result_document, result_file
from lungcad.service.studies import series_blobs

if TYPE_CHECKING:
    from lungcad.report.shown import ShownFinding
    from lungcad.service.context import ServiceContext

FOLDER = "viewer"
KEEP = 16  # cached volumes kept (a few GB at most for full chest CTs)
LABELS = "nodules.nii.gz"
REPORT_INPUT = "report_input.json"  # the report's options, min_probability among them


@dataclass(frozen=True)
class ViewerFile:
    path: Path
    labels_stored: bool = True  # False: an all-zero label map (the analysis has no report)


def _folder(ctx: ServiceContext) -> Path:
    folder = ctx.storage.root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _prune(folder: Path, keep: int = KEEP) -> None:
    files = sorted(folder.glob("*.nii.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def analysis_volume(ctx: ServiceContext, s: Session, analysis_id: str) -> ViewerFile:
    """The NIfTI (.nii.gz, int16 HU) of the series analysis ``analysis_id`` read.

    Raises:
        ApiError: 404, no such analysis; 410, its series' instances are gone.
    """
    row, _ = get_analysis(s, analysis_id)
    blobs = sorted(series_blobs(s, row.series_uid))
    if not blobs:
        raise ApiError(
            410, "gone", f"the series of analysis {analysis_id} is no longer stored", fix="upload it again"
        )
    digest = hashlib.sha256("\n".join([row.series_uid, *(d for _, d in blobs)]).encode()).hexdigest()
    folder = _folder(ctx)
    path = folder / f"{digest[:40]}.nii.gz"
    if path.is_file():
        path.touch()  # recently used: pruned last
        return ViewerFile(path)
    from lungcad.io.image import save_volume
    from lungcad.io.load import load_ct

    staging = ctx.storage.staging_dir("viewer")
    try:
        series = ctx.storage.link_series(blobs, staging / "series")
        volume = load_ct(series, row.series_uid)
        hu = np.clip(np.rint(volume.hu), -32768, 32767).astype(np.int16)
        save_volume(volume, path, array=hu)  # atomic: a reader never sees half a file
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(folder)
    return ViewerFile(path)


def analysis_labels(ctx: ServiceContext, s: Session, analysis_id: str) -> ViewerFile:
    """``nodules.nii.gz`` of a done analysis, or an all-zero map on its volume's grid when it has none.

    Raises:
        ApiError: 404, no such analysis; 409, not done yet; 410, its files are gone.
    """
    try:
        path, _ = result_file(ctx, s, analysis_id, LABELS)
        return ViewerFile(path)
    except ApiError as exc:
        if exc.status != 404:
            raise
    volume_file = analysis_volume(ctx, s, analysis_id).path
    empty = volume_file.with_name(volume_file.name.removesuffix(".nii.gz") + "-nolabels.nii.gz")
    if not empty.is_file():
        from lungcad.io.image import load_image, save_volume

        volume = load_image(volume_file)
        save_volume(volume, empty, array=np.zeros(volume.shape, dtype=np.uint8))
    return ViewerFile(empty, labels_stored=False)


def shown(ctx: ServiceContext, s: Session, analysis_id: str) -> tuple[ScanResult, float, list[ShownFinding]]:
    """The result of a done analysis, the report's threshold and the findings the report shows, numbered
    as the report, the label map, the SEG and the SR number them.

    Raises:
        ApiError: 404, no such analysis; 409, not done yet; 410, its files are gone.
    """
    from lungcad.report.shown import shown_findings

    doc = result_document(ctx, s, analysis_id)
    result = ScanResult.from_dict(json.loads(doc.body))
    threshold = float(ctx.config.infer.report_threshold)
    try:
        saved, _ = result_file(ctx, s, analysis_id, REPORT_INPUT)
        threshold = float(json.loads(saved.read_text(encoding="utf-8")).get("min_probability", threshold))
    except ApiError as exc:
        if exc.status != 404:
            raise
    return result, threshold, shown_findings(result, threshold)
