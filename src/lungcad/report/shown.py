"""Which findings a report shows, in which order, under which number; and the report's options.

A report shows the findings whose calibrated probability reaches ``min_probability``
(``infer.report_threshold``, the same rule as the ``detect`` table), sorted most urgent first: by
Lung-RADS category (4X, 4B, 4A, 3, 2, 1), then by diameter, then by probability.  Finding ``n`` of the
report is row ``n`` of the table, label ``n`` of ``nodules.nii.gz``, segment ``n`` of the DICOM SEG and
tracking identifier "Nodule n" of the SR.  A scan that could not be analysed (``qa_failed``) shows none.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lungcad.types import Finding, ScanResult, ScanStatus


class StudyKind(StrEnum):
    """What the CT was done for: it decides which follow-up guidance the report gives."""

    SCREENING = "screening"  # lung cancer screening (low-dose CT): Lung-RADS v2022
    INCIDENTAL = "incidental"  # any other chest CT: Fleischner Society 2017 for incidental nodules


@dataclass(frozen=True)
class ReportOptions:
    """How to render a report.

    Args:
        min_probability: calibrated probability from which a finding is shown (``infer.report_threshold``).
        study_kind: screening (Lung-RADS management) or incidental (Fleischner 2017 recommendations).
        explain: add Grad-CAM maps of the centre-heatmap head (needs the model: ``render_report(model=...)``).
        calibration: one line naming how the probabilities were calibrated (from the model card).
        dicom: write the DICOM SEG, SR and Encapsulated PDF (a DICOM source series is needed).
    """

    min_probability: float = 0.5
    study_kind: StudyKind = StudyKind.SCREENING
    explain: bool = False
    calibration: str | None = None
    dicom: bool = True


@dataclass(frozen=True)
class ShownFinding:
    """A finding as the report shows it: ``number`` (1-based) and its ``index`` in ``result.findings``."""

    number: int
    index: int
    finding: Finding

    @property
    def label(self) -> str:
        # a lesion of >= 30 mm is a mass (Fleischner glossary): the report names it so
        return f"{'Mass' if self.finding.lesion_kind == 'mass' else 'Nodule'} {self.number}"


def _urgency(f: Finding) -> tuple[int, float, float]:
    return (f.lung_rads.rank if f.lung_rads is not None else -1, f.diameter_mm, f.probability)


def shown_findings(result: ScanResult, min_probability: float) -> list[ShownFinding]:
    """The findings a report shows, most urgent first, numbered from 1 (rules in the module docstring)."""
    if result.status is ScanStatus.QA_FAILED:
        return []
    picked = [(i, f) for i, f in enumerate(result.findings) if f.probability >= min_probability]
    picked.sort(key=lambda item: _urgency(item[1]), reverse=True)
    return [ShownFinding(n, i, f) for n, (i, f) in enumerate(picked, start=1)]
