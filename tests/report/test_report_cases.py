"""The report's wording for the cases a reader must not misread: QA failed, no finding; the guidance."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungcad.report.guidance import fleischner_line, guidance, scan_category
from lungcad.report.shown import ReportOptions, ShownFinding, StudyKind, shown_findings
from lungcad.types import CheckStatus, Finding, LungRads, QACheck, QAReport, ScanResult, ScanStatus, Texture
from tests.report.conftest import dciodvfy_errors, pdf_text, slab_series

PASS_QA = QAReport([QACheck("slice_thickness", CheckStatus.PASS, 2.5, "2.5 mm slices")])


@pytest.fixture(scope="module")
def slab_volume():
    from lungcad.io import load_ct

    return load_ct(slab_series())


def _render(result: ScanResult, volume, out: Path):
    from lungcad.report import render_report

    return render_report(result, volume, out, options=ReportOptions())


@pytest.mark.slow
def test_qa_failed_scan_gets_a_red_banner_and_no_reassurance(slab_volume, tmp_path: Path) -> None:
    result = ScanResult(
        slab_volume.metadata.series_uid,
        [],
        status=ScanStatus.QA_FAILED,
        qa=QAReport([QACheck("lung_coverage", CheckStatus.FAIL, 0.0, "no lung found in the scan")]),
        reason="no lung found in the scan (not a chest CT, or the lungs are outside the volume)",
    )
    files = _render(result, slab_volume, tmp_path)
    html = files.html.read_text()
    assert 'class="banner banner-fail"' in html and "QA FAILED - results not reliable" in html
    assert "No nodule found" not in html and "Not analysed" in html
    assert "Lung-RADS 0 - Incomplete" in html
    text = pdf_text(files.pdf)
    assert "QA FAILED" in text and "No nodule found" not in text
    assert files.seg is None and any("SEG" in s for s in files.skipped)
    for path in (files.sr, files.pdf_dicom):
        assert dciodvfy_errors(path) == []


@pytest.mark.slow
def test_no_finding_scan_says_so_plainly_with_the_qa_status(slab_volume, tmp_path: Path) -> None:
    low = Finding((56.6, 85.9, -114.0), 4.0, probability=0.1, texture=Texture.SOLID, lung_rads=LungRads.C2)
    result = ScanResult(slab_volume.metadata.series_uid, [low], qa=PASS_QA)
    files = _render(result, slab_volume, tmp_path)
    html = files.html.read_text()
    assert "No nodule found (p &gt;= 0.5). QA: pass." in html
    assert "banner" not in html.split("<h2>Summary")[0].split("</table>")[-1]
    assert "Lung-RADS 1 - Negative" in html
    text = pdf_text(files.pdf)
    assert "No nodule found" in text and "QA: pass" in text
    import highdicom as hd

    sr = hd.sr.srread(files.sr)
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    assert dciodvfy_errors(files.sr) == []


def test_qa_warning_with_no_finding_does_not_reassure() -> None:
    from lungcad.report.html import _summary

    qa = QAReport([QACheck("lung_coverage", CheckStatus.FAIL, 0.98, "lungs cut at the apex")])
    result = ScanResult("1.2.3", [], status=ScanStatus.QA_WARNING, qa=qa)
    assert "NOT excluded" in _summary(result, [], 0.5)


def _shown(*findings: Finding) -> list[ShownFinding]:
    return shown_findings(ScanResult("1", list(findings)), 0.5)


def test_findings_sorted_by_lung_rads_then_size() -> None:
    a = Finding((0, 0, 0), 5.0, probability=0.9, texture=Texture.SOLID, lung_rads=LungRads.C2)
    b = Finding((1, 0, 0), 9.0, probability=0.6, texture=Texture.SOLID, lung_rads=LungRads.C4A)
    c = Finding((2, 0, 0), 5.5, probability=0.8, texture=Texture.SOLID, lung_rads=LungRads.C2)
    d = Finding((3, 0, 0), 30.0, probability=0.4, texture=Texture.SOLID, lung_rads=LungRads.C4B)
    shown = _shown(a, b, c, d)
    assert [(s.number, s.index) for s in shown] == [(1, 1), (2, 2), (3, 0)]  # d is below 0.5


def test_scan_category_and_management() -> None:
    b = Finding((1, 0, 0), 9.0, probability=0.6, texture=Texture.SOLID, lung_rads=LungRads.C4A)
    small = Finding((2, 0, 0), 4.0, probability=0.9, texture=Texture.SOLID, lung_rads=LungRads.C2)
    assert scan_category([], qa_failed=False) == "1"
    assert scan_category([], qa_failed=True) == "0"
    assert scan_category(_shown(small), qa_failed=True) == "0"  # a "2" would reassure wrongly
    assert scan_category(_shown(b, small), qa_failed=True) == "4A"  # a 4A needs its management anyway
    assert "incomplete" in guidance(_shown(b), StudyKind.SCREENING, qa_failed=True).lines[-1]
    g = guidance(_shown(b), StudyKind.SCREENING, qa_failed=False)
    assert g.headline == "Lung-RADS 4A - Suspicious" and "3 months" in g.lines[0]


@pytest.mark.parametrize(
    ("diameter", "texture", "multiple", "expected"),
    [
        (4.0, Texture.SOLID, False, "no routine follow-up (low risk)"),
        (7.0, Texture.SOLID, False, "CT at 6-12 months"),
        (7.0, Texture.SOLID, True, "CT at 3-6 months"),
        (12.0, Texture.SOLID, False, "consider CT at 3 months, PET/CT, or tissue sampling"),
        (8.0, Texture.GROUND_GLASS, False, "CT at 6-12 months to confirm persistence"),
        (8.0, Texture.PART_SOLID, False, "CT at 3-6 months to confirm persistence"),
        (4.0, Texture.GROUND_GLASS, True, "CT at 3-6 months; if stable"),
        (9.0, Texture.CALCIFIED, False, "benign calcification"),
    ],
)
def test_fleischner_2017(diameter: float, texture: Texture, multiple: bool, expected: str) -> None:
    s = ShownFinding(1, 0, Finding((0, 0, 0), diameter, texture=texture))
    assert expected in fleischner_line(s, multiple)


def test_incidental_study_gets_fleischner_not_lung_rads() -> None:
    b = Finding((1, 0, 0), 9.0, probability=0.6, texture=Texture.SOLID, lung_rads=LungRads.C4A)
    g = guidance(_shown(b), StudyKind.INCIDENTAL, qa_failed=False)
    assert g.system == "Fleischner Society 2017" and g.category is None
    assert "Nodule 1 (9.0 mm solid)" in g.lines[0]


def test_study_kind_option_rejects_unknown_values(capsys) -> None:
    from lungcad.cli import main

    assert main(["report", "x", "--study-kind", "routine"]) == 2
    assert "screening" in capsys.readouterr().err
