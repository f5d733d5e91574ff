"""lungcad.report: the clinician report, its figures and the DICOM SEG / SR / Encapsulated PDF.

One entry point, :func:`render_report` (``lungcad.report.render``).  The names below are imported on first
use, so ``import lungcad.report.shown`` (the CLI's option parsing) does not load torch, WeasyPrint or
highdicom.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReportFiles", "ReportOptions", "StudyKind", "render_report"]


def __getattr__(name: str) -> Any:
    if name in ("ReportFiles", "render_report"):
        from lungcad.report import render

        return getattr(render, name)
    if name in ("ReportOptions", "StudyKind"):
        from lungcad.report import shown

        return getattr(shown, name)
    raise AttributeError(f"module 'lungcad.report' has no attribute {name!r}")
