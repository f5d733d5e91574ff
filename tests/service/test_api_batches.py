"""``/batches``: one analysis per study (all or none), aggregate progress, findings as CSV without PHI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from lungcad.service.batches import CSV_COLUMNS
from lungcad.service.db.models import Analysis, AnalysisStatus, Batch
from lungcad.service.db.session import transaction
from lungcad.service.settings import ServiceSettings, load_settings
from tests.service.helpers_analyses import add_done, add_study

API = "/api/v1"


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    """A real (SQLite) queue that nothing consumes: created analyses stay queued."""
    return load_settings(tmp_path / "data", environ={}, queue_immediate=False)


def _rows(ctx) -> tuple[int, int]:
    with ctx.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Analysis)) or 0,
            s.scalar(select(func.count()).select_from(Batch)) or 0,
        )


def test_create_one_analysis_per_study(client, ctx, admin_headers) -> None:
    ids = [add_study(ctx) for _ in range(3)]
    r = client.post(f"{API}/batches", json={"study_ids": [*ids, ids[0]]}, headers=admin_headers)
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["n_analyses"] == 3 and len(b["analysis_ids"]) == 3  # the repeated id analysed once
    assert b["counts"] == {"queued": 3, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    assert b["progress"] == 0 and b["finished"] is False
    studies = [
        client.get(f"{API}/analyses/{a}", headers=admin_headers).json()["study_id"] for a in b["analysis_ids"]
    ]
    assert studies == ids  # request order
    assert ctx.queue.pending_count() == 3
    listed = client.get(f"{API}/analyses?batch_id={b['id']}", headers=admin_headers).json()
    assert listed["total"] == 3


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [("unknown", 404, "not_found"), ("unusable", 422, "no_usable_series")],
)
def test_one_bad_study_creates_nothing(client, ctx, admin_headers, bad, status, code) -> None:
    good = add_study(ctx)
    other = "nope" if bad == "unknown" else add_study(ctx, [("1.2.3.50", 5, False)])
    r = client.post(f"{API}/batches", json={"study_ids": [good, other]}, headers=admin_headers)
    assert r.status_code == status and r.json()["error"] == code and r.json()["fix"]
    assert _rows(ctx) == (0, 0)
    assert ctx.queue.pending_count() == 0


def test_body_errors(client, admin_headers) -> None:
    for body in ({"study_ids": []}, {}, {"study_ids": ["a"], "extra": 1}, {"study_ids": "a"}):
        r = client.post(f"{API}/batches", json=body, headers=admin_headers)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", body
    assert client.get(f"{API}/batches/nope", headers=admin_headers).status_code == 404
    assert client.get(f"{API}/batches/nope/findings.csv", headers=admin_headers).status_code == 404


def test_progress_is_the_mean_with_finished_ones_counting_one(client, ctx, admin_headers) -> None:
    ids = [add_study(ctx) for _ in range(4)]
    b = client.post(f"{API}/batches", json={"study_ids": ids}, headers=admin_headers).json()
    a = b["analysis_ids"]
    with transaction(ctx.sessions) as s:
        s.execute(update(Analysis).where(Analysis.id == a[0]).values(status="done", progress=1.0))
        s.execute(update(Analysis).where(Analysis.id == a[1]).values(status="running", progress=0.5))
        s.execute(update(Analysis).where(Analysis.id == a[2]).values(status="failed", progress=0.2))
    got = client.get(f"{API}/batches/{b['id']}", headers=admin_headers).json()
    assert got["counts"] == {"queued": 1, "running": 1, "done": 1, "failed": 1, "cancelled": 0}
    assert got["progress"] == pytest.approx((1 + 0.5 + 1 + 0) / 4, abs=1e-12)
    assert got["finished"] is False
    client.post(f"{API}/analyses/{a[1]}/cancel", headers=admin_headers)
    client.post(f"{API}/analyses/{a[3]}/cancel", headers=admin_headers)
    got = client.get(f"{API}/batches/{b['id']}", headers=admin_headers).json()
    assert got["finished"] is True and got["progress"] == 1


def test_findings_csv(client, ctx, admin_headers) -> None:
    ids = [add_study(ctx, patient_name="Secret^Name", patient_id="PID-777") for _ in range(3)]
    b = client.post(f"{API}/batches", json={"study_ids": ids}, headers=admin_headers).json()
    a = b["analysis_ids"]
    # analyses 0 and 1 finish (2 and 3 findings); analysis 2 stays queued
    for aid, sid, n in ((a[0], ids[0], 2), (a[1], ids[1], 3)):
        donor = add_done(ctx, sid, n_findings=n)
        with transaction(ctx.sessions) as s:
            s.execute(
                update(Analysis)
                .where(Analysis.id == aid)
                .values(status=AnalysisStatus.DONE, result_dir=donor, progress=1.0)
            )
    r = client.get(f"{API}/batches/{b['id']}/findings.csv", headers=admin_headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert "Secret" not in r.text and "PID-777" not in r.text  # no PHI
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(row["analysis_id"], row["finding_index"]) for row in rows] == [
        (a[0], "0"),
        (a[0], "1"),
        (a[1], "0"),
        (a[1], "1"),
        (a[1], "2"),
    ]
    with ctx.sessions() as s:
        folder = ctx.storage.result_dir(s.get(Analysis, a[1]).result_dir)
    f2 = json.loads((folder / "result.json").read_text())["findings"][2]
    last = rows[-1]
    assert last["study_id"] == ids[1] and last["series_uid"]
    assert [float(last[k]) for k in ("x_mm", "y_mm", "z_mm")] == f2["center_xyz_mm"]
    assert float(last["diameter_mm"]) == f2["diameter_mm"] and float(last["volume_mm3"]) == f2["volume_mm3"]
    assert (last["texture"], last["lung_rads"]) == (f2["texture"], f2["lung_rads"])
    assert float(last["probability"]) == f2["probability"]
    assert float(last["triage_probability"]) == f2["triage_probability"]

    high = client.get(f"{API}/batches/{b['id']}/findings.csv?min_probability=0.95", headers=admin_headers)
    assert high.text.splitlines() == [",".join(CSV_COLUMNS)]  # header only (the test findings are 0.9)


def test_permissions(client, ctx, make_key) -> None:
    sid = add_study(ctx)
    viewer = {"X-API-Key": make_key("viewer")}
    assert client.post(f"{API}/batches", json={"study_ids": [sid]}, headers=viewer).status_code == 403
    service = {"X-API-Key": make_key("service")}
    b = client.post(f"{API}/batches", json={"study_ids": [sid]}, headers=service).json()
    assert client.get(f"{API}/batches/{b['id']}", headers=viewer).status_code == 200
