"""``/comparisons`` with the report: ``POST`` renders the current study's report again with the comparison
(HTML / PDF, figures, DICOM SEG / SR / PDF) into a folder of its own, ``GET /comparisons/{id}/files[/{name}]``
serves it with the PHI rule of analysis files, reads are audited, names never leave the folder, the
analysis's own folder is not touched, and deleting the study removes the folder."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lungcad.report.rerender import rerender
from lungcad.service.app import create_app
from lungcad.service.context import open_context
from lungcad.service.db.models import AuditEvent, ComparisonRow
from lungcad.service.db.session import transaction
from lungcad.service.security import create_key
from lungcad.service.settings import load_settings
from tests.service.conftest import SLAB
from tests.service.helpers_analyses import add_done, store_folder

API = "/api/v1"


def _snapshot(folder: Path) -> dict[str, str]:
    """name -> sha256 of every file under ``folder``."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _code_values(ds: pydicom.Dataset) -> set[str]:
    """Every concept-name and concept code value of an SR content tree."""
    out: set[str] = set()
    for item in ds.get("ContentSequence", []):
        for key in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            out |= {str(c.CodeValue) for c in item.get(key, [])}
        out |= _code_values(item)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The slab stored, a prior analysis and a current one whose folder holds a real report (rendered as the
    worker does for ``report=true``), one comparison of the two posted; keys per role."""
    settings = load_settings(tmp_path_factory.mktemp("cmp") / "data", environ={}, queue_immediate=True)
    ctx = open_context(settings)
    try:
        with transaction(ctx.sessions) as s:
            keys = {r: {"X-API-Key": create_key(s, r).key} for r in ("admin", "radiologist", "viewer")}
        sid = store_folder(ctx, SLAB)
        prior = add_done(ctx, sid, n_findings=2)
        current = add_done(ctx, sid, n_findings=2, report=True)
        own = ctx.storage.result_dir(current)
        rerender(own, scan=SLAB, min_probability=0.5)
        before = _snapshot(own)
        with TestClient(create_app(ctx=ctx)) as client:
            r = client.post(
                f"{API}/comparisons",
                json={"analysis_id": current, "prior_analysis_id": prior},
                headers=keys["admin"],
            )
            assert r.status_code == 201, r.text
            yield {
                "ctx": ctx,
                "client": client,
                "keys": keys,
                "study": sid,
                "prior": prior,
                "current": current,
                "own": own,
                "before": before,
                "body": r.json(),
            }
    finally:
        ctx.close()


def test_the_report_with_the_comparison_is_rendered_and_listed(world) -> None:
    client, admin, body = world["client"], world["keys"]["admin"], world["body"]
    cid = body["id"]
    assert body["report"] == "report/report.html"
    assert client.get(f"{API}/comparisons/{cid}", headers=admin).json() == body
    with world["ctx"].sessions() as s:
        assert s.get(ComparisonRow, cid).result_dir == f"comparison-{cid}"
    r = client.get(f"{API}/comparisons/{cid}/files", headers=admin)
    assert r.status_code == 200, r.text
    files = {f["name"]: f for f in r.json()["files"]}
    assert r.json()["comparison_id"] == cid
    for name, media in {
        "report/report.html": "text/html",
        "report/report.pdf": "application/pdf",
        "dicom/sr.dcm": "application/dicom",
        "dicom/seg.dcm": "application/dicom",
        "dicom/report_pdf.dcm": "application/dicom",
        "result.json": "application/json",
        "nodules.nii.gz": "application/gzip",
        "report_input.json": "application/json",
    }.items():
        assert files[name]["media_type"] == media and files[name]["size"] > 0, name
    assert any(n.startswith("report/figures/") and n.endswith(".png") for n in files)

    html = client.get(f"{API}/comparisons/{cid}/files/report/report.html", headers=admin)
    assert html.status_code == 200 and html.headers["x-content-type-options"] == "nosniff"
    text = html.text
    prior_date = body["comparison"]["prior"]["study_date"]
    assert prior_date == "2000-01-01"  # the slab's StudyDate
    assert "Prior study date" in text and prior_date in text and "2 stable" in text
    # the analysis's own report has no comparison section
    assert "Prior study date" not in (world["own"] / "report" / "report.html").read_text()

    sr = client.get(f"{API}/comparisons/{cid}/files/dicom/sr.dcm", headers=admin)
    assert sr.status_code == 200
    codes = _code_values(pydicom.dcmread(world["own"].parent / f"comparison-{cid}" / "dicom" / "sr.dcm"))
    assert {"122140", "INTERVAL"} <= codes  # "Comparison with Prior Study Done", the interval change
    assert "122140" not in _code_values(pydicom.dcmread(world["own"] / "dicom" / "sr.dcm"))


def test_the_analysis_folder_is_left_byte_identical(world) -> None:
    assert _snapshot(world["own"]) == world["before"]
    assert world["before"]  # (the folder really holds the report)
    assert "report/report.pdf" in world["before"] and "dicom/sr.dcm" in world["before"]


def test_files_naming_the_patient_need_phi_read_and_reads_are_audited(world) -> None:
    client, keys, cid = world["client"], world["keys"], world["body"]["id"]
    base = f"{API}/comparisons/{cid}/files"
    listed = client.get(base, headers=keys["viewer"])
    assert listed.status_code == 200
    names = {f["name"] for f in listed.json()["files"]}
    assert "result.json" in names and "report/report.pdf" not in names and "dicom/sr.dcm" not in names
    for name in ("report/report.pdf", "dicom/sr.dcm", "report/report.html"):
        r = client.get(f"{base}/{name}", headers=keys["viewer"])
        assert r.status_code == 403 and r.json()["error"] == "forbidden" and r.json()["fix"], name
    ok = client.get(f"{base}/result.json", headers=keys["viewer"])
    assert ok.status_code == 200 and ok.content == (world["own"] / "result.json").read_bytes()
    pdf = client.get(f"{base}/report/report.pdf", headers=keys["radiologist"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    with world["ctx"].sessions() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.resource_type == "file")))
    got = {(e.role, e.resource_id, e.study_id, e.outcome) for e in rows}
    sid = world["study"]
    assert ("radiologist", f"comparison-{cid}/report/report.pdf", sid, "ok") in got
    assert ("viewer", f"comparison-{cid}/dicom/sr.dcm", sid, "failed") in got  # the 403
    assert ("viewer", f"comparison-{cid}/result.json", sid, "ok") in got


def test_file_names_never_leave_the_folder(world) -> None:
    client, admin, cid = world["client"], world["keys"]["admin"], world["body"]["id"]
    base = f"{API}/comparisons/{cid}/files/"
    cases = {
        "%2E%2E/%2E%2E/lungcad.db": 400,  # escaped so no client normalises it
        f"%2E%2E/{world['current']}/result.json": 400,  # the analysis's folder next door
        "report/%2E%2E/%2E%2E/%2E%2E/lungcad.db": 400,
        "%2Fetc%2Fpasswd": 400,
        "..%5C..%5Clungcad.db": 400,
        "nothing.pdf": 404,
        "report": 404,  # a folder is not a file
    }
    for name, status in cases.items():
        r = client.get(base + name, headers=admin)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.json()["error"] in {"bad_file_name", "not_found"}
    unknown = "0123456789abcdef0123456789abcdef"
    assert client.get(f"{API}/comparisons/{unknown}/files", headers=admin).status_code == 404
    assert client.get(f"{API}/comparisons/{unknown}/files/result.json", headers=admin).status_code == 404


def test_without_a_report_there_are_no_files(world) -> None:
    client, admin = world["client"], world["keys"]["admin"]
    # report=false on an analysis with a report; and an analysis made without one
    no_report = add_done(world["ctx"], world["study"], n_findings=2)
    for current, extra in ((world["current"], {"report": False}), (no_report, {})):
        body = {"analysis_id": current, "prior_analysis_id": world["prior"], **extra}
        r = client.post(f"{API}/comparisons", json=body, headers=admin)
        assert r.status_code == 201, r.text
        assert r.json()["report"] is None and r.json()["comparison"]["nodules"]
        cid = r.json()["id"]
        with world["ctx"].sessions() as s:
            assert s.get(ComparisonRow, cid).result_dir is None
        assert not (world["own"].parent / f"comparison-{cid}").exists()
        for url in (f"{API}/comparisons/{cid}/files", f"{API}/comparisons/{cid}/files/result.json"):
            got = client.get(url, headers=admin)
            assert got.status_code == 409 and "no files" in got.json()["message"], got.text
    assert _snapshot(world["own"]) == world["before"]


def test_deleting_the_study_removes_the_comparison_and_its_folder(world) -> None:
    """Last in this module: it deletes the study the others read."""
    client, admin, cid = world["client"], world["keys"]["admin"], world["body"]["id"]
    folder = world["own"].parent / f"comparison-{cid}"
    assert folder.is_dir()
    r = client.delete(f"{API}/studies/{world['study']}", headers=admin)
    assert r.status_code == 200, r.text
    assert not folder.exists() and not world["own"].exists()
    assert client.get(f"{API}/comparisons/{cid}", headers=admin).status_code == 404
    with world["ctx"].sessions() as s:
        assert s.scalar(select(ComparisonRow.id)) is None
