"""The report of the current scan *with* its comparison to a prior (``lungcad compare --report``).

:func:`report_comparison` renders the clinician report (HTML + PDF, figures, ``nodules.nii.gz``, DICOM SEG,
SR and Encapsulated PDF) of the current side of a ``Comparison``, the comparison section included
(``report.comparison_text``, ``report.dicom_sr_followup``).  The current side comes one of two ways, and
each has its own path, because what is in memory differs:

* **detected here** (``Side.run`` and the detector): the finding masks on the preprocessed grid, the lung
  mask and the model are in memory, so the report is made as ``lungcad detect --report`` makes it
  (``rerender.report_detection``), after writing the ``result.json`` the comparison's finding indices refer
  to;
* **a ``lungcad detect --out`` folder**: only files exist.  Its ``result.json``, ``report_input.json`` and
  ``nodules.nii.gz`` (those present) are *copied* into ``out`` and the report is rendered there from them
  (``rerender.rerender``, as ``lungcad report DIR`` does: the saved segmentation kept, spheres otherwise).
  The user's folder is never written to: a comparison report is a new document, and overwriting the
  baseline report of that folder would lose it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lungcad.errors import InputError
from lungcad.infer.outputs import write_result_json
from lungcad.longitudinal.contract import Comparison
from lungcad.longitudinal.sides import REPORT_INPUT, RESULT_NAME, Side
from lungcad.report.masks import LABELS_NAME
from lungcad.report.render import ReportFiles
from lungcad.report.rerender import report_detection, rerender
from lungcad.report.shown import StudyKind

COPIED = (RESULT_NAME, REPORT_INPUT, LABELS_NAME)  # what a detect folder lends the report, if present


def _copy_detect_folder(folder: Path, out: Path) -> None:
    """Copy the files of ``folder`` the report is rendered from into ``out`` (``out`` must differ)."""
    if not (folder / RESULT_NAME).is_file():
        raise InputError("no result.json in the current detect folder", path=folder)
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() == folder.resolve():
        raise InputError(
            "the comparison report would be written into the current scan's detect folder itself",
            path=folder,
            fix="give an --out folder other than the one holding the current detect folder as current/",
        )
    for name in COPIED:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, out / name)  # contents only: the copies get fresh mtimes
        else:
            # a stale copy from an earlier run must not stand in for a file the folder no longer has
            (out / name).unlink(missing_ok=True)


def report_comparison(
    comparison: Comparison,
    current: Side,
    current_scan: str | Path,
    out: str | Path,
    *,
    detector: Any = None,
    current_folder: str | Path | None = None,
    min_probability: float,
    study_kind: StudyKind | str | None = None,
) -> ReportFiles:
    """Write the current scan's report with the comparison section into ``out``.

    Args:
        comparison: the current scan against its prior (``longitudinal.compare_scans``); its finding
            indices are those of ``current.result``.
        current: the comparison's current side (``compare_scans``' second return value).
        current_scan: the current scan (DICOM folder, ``.mhd``, ``.nii.gz``): the report's images and, for
            a DICOM series, the SEG / SR references.
        out: the report folder (created); gets ``result.json``, ``report_input.json``, ``nodules.nii.gz``,
            ``report/`` and ``dicom/`` (``render.render_report``).
        detector: the ``Detector`` that detected ``current`` (its calibration text goes into the report).
        current_folder: the ``lungcad detect --out`` folder ``current`` was read from; given, the report is
            rendered from copies of its files (the folder itself is left untouched).
        min_probability: findings shown from this probability, 0 to 1 (the comparison's
            ``min_probability``, so the report's nodules are the compared ones).
        study_kind: screening (Lung-RADS) or incidental (Fleischner); None: the detect folder's saved
            choice, else screening.

    Returns:
        ``ReportFiles``: what was written, and what was skipped with the reason.

    Raises:
        InputError: a current side neither detected here nor read from a folder; ``out`` is the detect
            folder itself; the comparison is of another series (``render_report``).
    """
    target = Path(out)
    if current_folder is not None:
        _copy_detect_folder(Path(current_folder), target)
        return rerender(
            target,
            scan=current_scan,
            min_probability=min_probability,
            study_kind=study_kind,
            comparison=comparison,
        )
    if current.run is None or detector is None:
        raise InputError(
            "the current side has no detection in memory and no detect folder to report from",
            fix="pass the detector and a side detected by it, or current_folder (a `lungcad detect --out`)",
        )
    target.mkdir(parents=True, exist_ok=True)
    write_result_json(current.result, target / RESULT_NAME)
    return report_detection(
        current.run,
        detector,
        target,
        min_probability=min_probability,
        study_kind=study_kind or StudyKind.SCREENING,
        comparison=comparison,
    )
