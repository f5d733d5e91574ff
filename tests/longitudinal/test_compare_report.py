"""``lungcad compare --report``: the current scan's report and SR with the comparison section.

Two paths (``lungcad.report.comparison_report``): the current side a ``lungcad detect --out`` folder (the
phantom pair of conftest written as DICOM, findings placed by hand: growing, stable, new), rendered from
copies in OUT/current while the folder stays untouched; and the current side detected here (the bundled
LIDC slab against a detect folder of itself: every nodule stable), rendered from the detector's run.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pydicom
import pytest

from lungcad.cli import main
from lungcad.infer.risk import attach_risk
from lungcad.io import load_ct
from lungcad.io.dicom_write import SeriesIdentity, write_ct_series
from lungcad.types import Finding, ScanResult, Texture
from tests.conftest import REPO
from tests.longitudinal.conftest import Pair
from tests.report.conftest import pdf_text, slab_series

PRIOR_DATE, CURRENT_DATE = "20240101", "20240701"  # 182 days
GROWING = (-60.0, -10.0, -10.0)  # prior world centres (mm) inside the left / right phantom lung
STABLE = (60.0, 10.0, 10.0)
NEW = (-55.0, 25.0, 25.0)  # current frame: no prior nodule within 15 mm


@dataclass
class Folders:
    current: Path  # `lungcad detect --out --report` folder of the current scan
    prior: Path
    prior_study_uid: str


def _hashes(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: relative path -> (SHA-256, mtime in ns)."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _text(html: Path) -> str:
    """The report's words: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html.read_text())).split())


def _detect_dir(folder: Path, scan: Path, findings: list[Finding]) -> Path:
    """What ``lungcad detect --out`` writes: result.json (with the Brock risk, as detect attaches it) and
    report_input.json naming the scan."""
    folder.mkdir(parents=True)
    volume = load_ct(scan)
    result = attach_risk(
        ScanResult(volume.metadata.series_uid, findings), volume, None, None, report_threshold=0.5
    )
    (folder / "result.json").write_text(json.dumps(result.to_dict()))
    (folder / "report_input.json").write_text(json.dumps({"scan": str(scan)}))
    return folder


@pytest.fixture(scope="module")
def folders(phantom_pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> Folders:
    root = tmp_path_factory.mktemp("compare_report")
    scans = {}
    for name, volume, date in (
        ("prior", phantom_pair.prior, PRIOR_DATE),
        ("current", phantom_pair.current, CURRENT_DATE),
    ):
        identity = SeriesIdentity(study_date=date, series_description=f"phantom {name}")
        scans[name] = write_ct_series(volume, root / "scans" / name, uid_seed=name, identity=identity)
    prior = _detect_dir(
        root / "prior",
        root / "scans" / "prior",
        [Finding(GROWING, 6.0, texture=Texture.SOLID), Finding(STABLE, 5.0, texture=Texture.SOLID)],
    )
    current = _detect_dir(
        root / "current",
        root / "scans" / "current",
        [
            Finding(phantom_pair.map(GROWING), 8.0, texture=Texture.SOLID, probability=0.95),
            Finding(phantom_pair.map(STABLE), 5.0, texture=Texture.SOLID, probability=0.9),
            Finding(NEW, 4.5, texture=Texture.SOLID, probability=0.8),
        ],
    )
    # its baseline report, as `detect --report` leaves it (nodules.nii.gz, report/, dicom/)
    assert main(["report", str(current)]) == 0
    assert (current / "nodules.nii.gz").is_file()
    return Folders(current, prior, scans["prior"].study_uid)


@dataclass
class Run:
    out: Path
    stdout: str
    before: dict[str, tuple[str, int]]
    after: dict[str, tuple[str, int]]


@pytest.fixture(scope="module")
def folder_run(folders: Folders, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("compare_report_out")
    before = _hashes(folders.current)
    capture = pytest.MonkeyPatch()  # capsys is per test; this run is per module
    buffer = io.StringIO()
    capture.setattr("sys.stdout", buffer)
    try:
        code = main(["compare", str(folders.current), str(folders.prior), "--out", str(out), "--report"])
    finally:
        capture.undo()
    assert code == 0, buffer.getvalue()
    return Run(out, buffer.getvalue(), before, _hashes(folders.current))


def test_report_of_a_detect_folder_shows_the_comparison_and_the_risk(folder_run: Run) -> None:
    html = folder_run.out / "current" / "report" / "report.html"
    text = _text(html)
    assert "Comparison with prior study Prior study date 2024-01-01" in text, text
    assert "182 days (6.0 months), 2024-01-01 to 2024-07-01" in text
    comparison = json.loads((folder_run.out / "comparison.json").read_text())
    by_status = {n["status"]: n for n in comparison["nodules"]}
    assert sorted(by_status) == ["growing", "new", "stable"]
    vdt = by_status["growing"]["doubling_time"]
    assert vdt["days"] > 0
    assert f"growing 6.0 mm -> 8.0 mm +2.0 mm +137 % {vdt['days']:.0f} d ({vdt['low_days']:.0f}-" in text
    assert "stable 5.0 mm -> 5.0 mm +0.0 mm +0 %" in text and "new - -> 4.5 mm" in text
    assert "Malignancy risk (Brock / PanCan model 2b)" in text and "Brock risk " in text
    # the report was rendered from the copies, its finding files next to it
    for name in ("result.json", "report_input.json", "nodules.nii.gz", "dicom/sr.dcm", "report/report.pdf"):
        assert (folder_run.out / "current" / name).is_file(), name
    assert f"wrote report_html: {html}" in " ".join(folder_run.stdout.split())


def test_the_detect_folder_is_left_untouched(folders: Folders, folder_run: Run) -> None:
    assert folder_run.after == folder_run.before
    baseline = " ".join((folders.current / "report" / "report.html").read_text().split())
    assert "Comparison with prior study" not in baseline


def test_sr_references_the_prior_study_and_codes_the_change(folders: Folders, folder_run: Run) -> None:
    ds = pydicom.dcmread(folder_run.out / "current" / "dicom" / "sr.dcm")

    def walk(items):
        for item in items:
            yield item
            yield from walk(getattr(item, "ContentSequence", []))

    items = list(walk(ds.ContentSequence))
    texts = [i.TextValue for i in items if i.ValueType == "TEXT"]
    assert "Prior study" in texts
    uids = {i.ConceptNameCodeSequence[0].CodeValue: i.UID for i in items if i.ValueType == "UIDREF"}
    assert uids["110180"] == folders.prior_study_uid  # Study Instance UID of the prior
    assert PRIOR_DATE in [i.Date for i in items if i.ValueType == "DATE"]
    coded = {
        (i.ConceptNameCodeSequence[0].CodeValue, i.ConceptCodeSequence[0].CodeValue)
        for i in items
        if i.ValueType == "CODE"
    }
    assert ("INTERVAL", "15454001") in coded  # SCT Increased size: the growing nodule
    assert ("INTERVAL", "STABLE") in coded
    names = {i.ConceptNameCodeSequence[0].CodeValue for i in items if i.ValueType == "NUM"}
    assert {"VDT", "111047"} <= names  # the doubling time and the Brock risk (DCM 111047)


def test_pdf_has_the_comparison_heading(folder_run: Run) -> None:
    text = " ".join(pdf_text(folder_run.out / "current" / "report" / "report.pdf").split())
    assert "Comparison with prior study" in text and "2024-01-01" in text


def test_report_without_out_exits_2_naming_the_fix(
    folders: Folders, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(folders.current), str(folders.prior), "--report"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--report writes files, but no --out folder was given" in err and "add --out DIR" in err


def test_report_of_a_scan_detected_here(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The slab detected by the command against a prior detect folder of the same scan holding its top
    nodule (the golden result's) at 20 mm a year earlier: growing, the report made from the run
    (segmentation masks, Brock risk attached as `lungcad detect` does), the files listed on stderr."""
    golden = json.loads((REPO / "tests" / "golden" / "expected" / "slab_lidc0001.json").read_text())
    top = golden["findings"][0]
    scan = slab_series()
    prior = tmp_path / "prior"
    prior.mkdir()
    nodule = Finding(tuple(top["center_xyz_mm"]), 20.0, texture=Texture.SOLID)
    (prior / "result.json").write_text(
        json.dumps(ScanResult(load_ct(scan).metadata.series_uid, [nodule]).to_dict())
    )
    (prior / "report_input.json").write_text(json.dumps({"scan": str(scan)}))
    out = tmp_path / "out"
    argv = ["compare", str(scan), str(prior), "--out", str(out), "--report", "--json"]
    code = main([*argv, "--current-date", "2001-01-10", "--prior-date", "2000-01-05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    (matched,) = [n for n in doc["nodules"] if n["prior_index"] == 0]
    assert matched["status"] == "growing" and matched["doubling_time"]["days"] > 0
    err = " ".join(captured.err.split())
    html = out / "current" / "report" / "report.html"
    assert f"wrote report_html: {html}" in err and f"wrote {out / 'current' / 'result.json'}" in err
    result = json.loads((out / "current" / "result.json").read_text())
    assert result["findings"][matched["current_index"]]["malignancy_risk"]["probability"] > 0
    text = _text(html)
    assert "Comparison with prior study Prior study date 2000-01-05" in text, text
    assert "371 days (12.2 months), 2000-01-05 to 2001-01-10" in text
    vdt = f"{matched['doubling_time']['days']:.0f} d ("
    assert f"Nodule 1 growing 20.0 mm -> {matched['current_diameter_mm']:.1f} mm" in text and vdt in text
    assert "Malignancy risk (Brock / PanCan model 2b)" in text
    assert (out / "current" / "dicom" / "sr.dcm").is_file()
    assert "segmentation" in (out / "current" / "nodules.json").read_text()  # the run's masks, not spheres
