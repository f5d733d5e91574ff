"""Acceptance on the real LIDC-IDRI-0001 series (skipped without ../shared/data): SEG, SR, dciodvfy, PDF."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.checks import seg_dice, sr_matches
from tests.report.conftest import Rendered, dciodvfy_errors, pdf_text, render_detection

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def lidc_report(lidc0001_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_detection(lidc0001_dir, tmp_path_factory.mktemp("lidc0001_report"))


def test_lidc0001_report(lidc_report: Rendered) -> None:
    dice = seg_dice(lidc_report.out, lidc_report.run.volume)
    assert dice and all(d == 1.0 for d in dice.values()), dice
    sr_matches(lidc_report.out, lidc_report.run.result, lidc_report.min_probability)
    for name in ("seg.dcm", "sr.dcm", "report_pdf.dcm"):
        assert dciodvfy_errors(lidc_report.out / "dicom" / name) == [], name
    text = pdf_text(lidc_report.files.pdf)
    f = next(f for f in lidc_report.run.result.findings if f.probability >= lidc_report.min_probability)
    row = next(line for line in text.splitlines() if line.strip().startswith("1 ") and "mm" in line)
    assert f"{f.diameter_mm:.1f} mm" in row and f.lung_rads.value in row
    # the LUNA16 nodule of this scan: 23.35 mm at (56.21, 86.34, -115.87) -- the report's finding 1
    assert abs(f.center_xyz_mm[0] - 56.2) < 5 and abs(f.center_xyz_mm[2] + 115.9) < 5
