"""The audit log: one row per authenticated request -- who read, downloaded, uploaded, analysed or deleted
which study, every 403 -- with ids only; append-only in the database (triggers, SQLite and PostgreSQL);
``GET /admin/audit`` filtered and paginated, for admins only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DatabaseError

from lungcad.service.db.migrate import upgrade
from lungcad.service.db.models import AuditEvent
from lungcad.service.db.session import utcnow
from tests.service.helpers_analyses import add_done, add_study
from tests.service.uploads import form, slab_zip

API = "/api/v1"
PATIENT_ID, PATIENT_NAME = "PHI-4711-SECRET", "Mustermann^Erika"
UNKNOWN = "0123456789abcdef0123456789abcdef"


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def events(ctx) -> list[AuditEvent]:  # noqa: ANN001 - a ServiceContext
    with ctx.sessions() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_reads_downloads_deletes_and_refusals_are_recorded(client, ctx, make_key) -> None:
    radiologist, viewer, admin = make_key("radiologist"), make_key("viewer"), make_key("admin")
    study = add_study(ctx, patient_id=PATIENT_ID, patient_name=PATIENT_NAME)
    analysis = add_done(ctx, study, extra_files={"report.html": b"<html>report</html>"})

    calls = [
        (radiologist, "GET", f"/studies/{study}", 200),
        (radiologist, "GET", "/studies", 200),
        (viewer, "GET", "/worklist", 200),
        (viewer, "GET", f"/analyses/{analysis}", 200),
        (radiologist, "GET", f"/analyses/{analysis}/result", 200),
        (radiologist, "GET", f"/analyses/{analysis}/files/report.html", 200),
        (viewer, "DELETE", f"/studies/{study}", 403),
        (radiologist, "GET", f"/studies/{UNKNOWN}", 404),
        (admin, "DELETE", f"/studies/{study}", 200),
    ]
    for key, method, path, status in calls:
        r = client.request(method, API + path, headers=h(key))
        assert r.status_code == status, (path, r.text)
    client.get(f"{API}/worklist", headers=h("lc_deadbeef_" + "x" * 40))  # 401: no principal, no row
    client.get(f"{API}/worklist")

    rows = events(ctx)
    got = [(e.key_prefix, e.action, e.resource_type, e.resource_id, e.study_id, e.outcome) for e in rows]
    p = {k: k.split("_")[1] for k in (radiologist, viewer, admin)}
    assert got == [
        (p[radiologist], "study.read", "study", study, study, "ok"),
        (p[radiologist], "study.read", "study", None, None, "ok"),  # the list
        (p[viewer], "worklist.read", "worklist", None, None, "ok"),
        (p[viewer], "analysis.read", "analysis", analysis, study, "ok"),
        (p[radiologist], "analysis.read", "analysis", analysis, study, "ok"),
        (p[radiologist], "analysis.read", "file", f"{analysis}/report.html", study, "ok"),
        (p[viewer], "study.delete", "study", study, study, "denied"),
        (p[radiologist], "study.read", "study", UNKNOWN, UNKNOWN, "failed"),
        (p[admin], "study.delete", "study", study, study, "ok"),
    ]
    assert {e.role for e in rows} == {"radiologist", "viewer", "admin"}
    assert all(e.client_ip == "testclient" and e.request_id and e.at for e in rows)
    # the request id is the one the response carried
    r = client.get(f"{API}/worklist", headers={**h(viewer), "X-Request-ID": "trace-me-42"})
    assert r.headers["X-Request-ID"] == "trace-me-42" and events(ctx)[-1].request_id == "trace-me-42"
    # ids only: no patient data in any column of any row
    dump = repr([[getattr(e, c.name) for c in AuditEvent.__table__.columns] for e in events(ctx)])
    assert PATIENT_ID not in dump and "Mustermann" not in dump and "Erika" not in dump


def test_an_upload_and_an_analysis_name_the_study(client, ctx, make_key) -> None:
    service = make_key("service")
    r = client.post(f"{API}/studies", files=form(("s.zip", slab_zip())), headers=h(service))
    assert r.status_code == 201, r.text
    study = r.json()["id"]
    up = events(ctx)[-1]
    assert (up.action, up.resource_type, up.resource_id, up.study_id, up.outcome) == (
        "study.upload",
        "study",
        study,
        study,
        "ok",
    )
    refused = client.post(f"{API}/studies", files=form(("x.dcm", b"not dicom")), headers=h(service))
    assert refused.status_code >= 400
    bad = events(ctx)[-1]
    assert (bad.action, bad.resource_type, bad.resource_id, bad.outcome) == (
        "study.upload",
        "study",
        None,
        "failed",
    )

    r = client.post(f"{API}/analyses", json={"study_id": study}, headers=h(make_key("radiologist")))
    assert r.status_code == 202, r.text
    made = [e for e in events(ctx) if e.action == "analysis.create"]
    assert [(e.resource_type, e.resource_id, e.study_id, e.outcome) for e in made] == [
        ("analysis", r.json()["id"], study, "ok")
    ]


def test_the_admin_route_filters_and_pages(client, ctx, make_key) -> None:
    viewer, radiologist, admin = make_key("viewer"), make_key("radiologist"), make_key("admin")
    a, b = add_study(ctx), add_study(ctx)
    for _ in range(3):
        client.get(f"{API}/studies/{a}", headers=h(viewer))
    client.get(f"{API}/studies/{b}", headers=h(radiologist))
    client.delete(f"{API}/studies/{b}", headers=h(radiologist))  # 403
    start = utcnow() - timedelta(seconds=1)

    def audit(**params: str | int) -> dict:
        r = client.get(f"{API}/admin/audit", params=params, headers=h(admin))
        assert r.status_code == 200, r.text
        return r.json()

    assert audit(study_id=a)["total"] == 3
    by_viewer = audit(key_prefix=viewer.split("_")[1])
    assert by_viewer["total"] == 3 and {i["study_id"] for i in by_viewer["items"]} == {a}
    denied = audit(outcome="denied")
    assert [(i["action"], i["resource_id"], i["role"]) for i in denied["items"]] == [
        ("study.delete", b, "radiologist")
    ]
    assert audit(action="study.delete", study_id=b)["total"] == 1
    page = audit(study_id=a, limit=2, offset=0)
    rest = audit(study_id=a, limit=2, offset=2)
    assert (len(page["items"]), len(rest["items"]), page["total"]) == (2, 1, 3)
    ids = [i["id"] for i in page["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first, no overlap
    assert audit(since=start.isoformat(), study_id=a)["total"] == 3
    assert audit(until=start.isoformat(), study_id=a)["total"] == 0
    assert audit(since=(utcnow() + timedelta(hours=1)).isoformat())["total"] == 0
    # reading the audit is audited too
    assert audit(action="audit.read")["total"] >= 1
    bad = client.get(f"{API}/admin/audit", params={"action": "no.such"}, headers=h(admin))
    assert bad.status_code == 422


@pytest.mark.parametrize("role", ["radiologist", "researcher", "service", "viewer"])
def test_only_admins_read_the_audit(client, ctx, make_key, role: str) -> None:
    key = make_key(role)
    r = client.get(f"{API}/admin/audit", headers=h(key))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    last = events(ctx)[-1]
    assert (last.action, last.outcome, last.role) == ("audit.read", "denied", role)


def _refuses_changes(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_events (at, key_prefix, role, action, resource_type, outcome) "
                    "VALUES (:at, 'abcd1234', 'admin', 'study.read', 'study', 'ok')"
                ),
                {"at": utcnow()},
            )
        for sql in (
            "UPDATE audit_events SET outcome = 'denied'",
            "DELETE FROM audit_events",
        ):
            with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
                conn.execute(text(sql))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*), min(outcome) FROM audit_events")).one() == (1, "ok")
    finally:
        engine.dispose()


def test_the_table_is_append_only_in_sqlite(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    _refuses_changes(url)


def test_the_table_is_append_only_in_postgresql(postgres_db_url: str) -> None:
    upgrade(postgres_db_url)
    _refuses_changes(postgres_db_url)
    engine = create_engine(postgres_db_url)
    try:
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_events"))
    finally:
        engine.dispose()
