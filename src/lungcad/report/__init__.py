"""lungcad.report: the clinician report, its figures and the DICOM SEG / SR / Encapsulated PDF.

One entry point, :func:`render_report` (``lungcad.report.render``); heavy libraries (WeasyPrint, highdicom,
plotly) are imported on first use.
"""

from lungcad.report.render import ReportFiles, render_report
from lungcad.report.shown import ReportOptions, StudyKind

__all__ = ["ReportFiles", "ReportOptions", "StudyKind", "render_report"]
