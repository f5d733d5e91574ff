"""Result delivery over real loopback networking: a pynetdicom Storage SCP stands in for a PACS (answering
the C-STORE statuses a test chooses), an ``http.server`` for a STOW-RS endpoint; a closed port is a
destination that is down.  Deliveries are sent by ``deliver_due`` called directly, and retries are stepped
with a fake ``now`` instead of sleeping through the backoff.  (The round trip with a real Orthanc is
``test_orthanc_roundtrip.py``.)
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from lungcad.service import delivery
from lungcad.service.app import create_app
from lungcad.service.context import ServiceContext
from lungcad.service.db.models import Analysis, AnalysisStatus, ResultDelivery, ResultDeliveryStatus
from lungcad.service.db.session import as_utc, transaction, utcnow
from lungcad.service.delivery import deliver_due, queue_deliveries
from lungcad.service.delivery_stow import classify_response
from lungcad.service.jobs import state
from lungcad.service.security import create_key
from lungcad.service.settings import load_settings
from tests.service.helpers_delivery import CT_CLASS, FakePacs, FakeStow, done_analysis, open_with, read_part
from tests.service.processes import free_port

API = "/api/v1"
REPO = Path(__file__).resolve().parents[2]
S = ResultDeliveryStatus


def cstore(port: int, **extra: object) -> dict[str, object]:
    return {"name": "pacs", "kind": "cstore", "host": "127.0.0.1", "port": port, "called_ae": "PACS"} | extra


def rows(ctx: ServiceContext, analysis_id: str) -> dict[tuple[str, str], ResultDelivery]:
    with ctx.sessions() as s:
        found = s.scalars(select(ResultDelivery).where(ResultDelivery.analysis_id == analysis_id)).all()
    return {(r.destination, r.object_kind): r for r in found}


@pytest.fixture
def port() -> int:
    return free_port()


# -- queueing ----------------------------------------------------------------------------------------------
def test_one_row_per_destination_and_object_a_missing_seg_is_skipped(tmp_path: Path, port: int) -> None:
    ctx = open_with(
        tmp_path,
        [
            cstore(port),
            {"name": "web", "kind": "stowrs", "url": "http://127.0.0.1:9/dicom-web", "objects": ["sr"]},
            cstore(port, name="off", enabled=False),
        ],
    )
    aid, uids = done_analysis(ctx, ("sr", "pdf"))  # no finding: no SEG
    assert len(queue_deliveries(ctx, aid)) == 3
    got = rows(ctx, aid)
    assert set(got) == {("pacs", "seg"), ("pacs", "sr"), ("pacs", "pdf"), ("web", "sr")}
    assert got[("pacs", "seg")].status is S.SKIPPED and "no finding" in got[("pacs", "seg")].last_error
    for key in (("pacs", "sr"), ("pacs", "pdf"), ("web", "sr")):
        row = got[key]
        assert (row.status, row.attempts, row.max_attempts) == (S.PENDING, 0, 6)
        assert row.sop_instance_uid == uids[key[1]] and row.kind == (
            "stowrs" if key[0] == "web" else "cstore"
        )
    assert queue_deliveries(ctx, aid) == [] and len(rows(ctx, aid)) == 4  # queued once
    no_report, _ = done_analysis(ctx, report=False)  # report false: no DICOM objects, nothing to deliver
    assert queue_deliveries(ctx, no_report) == [] and rows(ctx, no_report) == {}
    ctx.close()


def test_finishing_an_analysis_queues_its_deliveries(tmp_path: Path, port: int) -> None:
    """The hook: ``jobs.state.finish_done`` (what the runner calls) queues the rows once the row is done."""
    ctx = open_with(tmp_path, [cstore(port)])
    aid, _ = done_analysis(ctx)
    with transaction(ctx.sessions) as s:
        s.execute(update(Analysis).where(Analysis.id == aid).values(status=AnalysisStatus.QUEUED, attempts=0))
    token = state.claim(ctx, aid, "test-worker")
    assert token is not None and rows(ctx, aid) == {}
    assert state.finish_done(ctx, aid, token, aid, {})
    assert {k: r.status for k, r in rows(ctx, aid).items()} == {
        ("pacs", k): S.PENDING for k in ("seg", "sr", "pdf")
    }
    ctx.close()


def test_a_queueing_failure_never_fails_the_analysis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = open_with(tmp_path, [cstore(104)])

    def broken(*_a: object, **_k: object) -> list[str]:
        raise OSError("disk gone")

    monkeypatch.setattr(delivery, "queue_deliveries", broken)
    assert delivery.queue_after_analysis(ctx, "whatever") == 0
    ctx.close()


# -- C-STORE -------------------------------------------------------------------------------------------
def test_cstore_delivers_every_object_once(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port)])
    aid, uids = done_analysis(ctx)
    queue_deliveries(ctx, aid)
    with FakePacs(port).running() as pacs:
        assert deliver_due(ctx) == 3
        assert deliver_due(ctx) == 0  # delivered: not sent again
    assert sorted(pacs.received) == sorted(uids.values())
    for row in rows(ctx, aid).values():
        assert (row.status, row.attempts, row.last_status, row.last_error) == (S.DELIVERED, 1, 0, None)
        assert row.delivered_at is not None
    ctx.close()


def test_claims_and_retries_on_postgresql(tmp_path: Path, port: int, postgres_db_url: str) -> None:
    """The conditional UPDATEs (claim, record) and the due query on a real PostgreSQL."""
    ctx = open_with(tmp_path, [cstore(port, backoff_s=0)], database_url=postgres_db_url)
    aid, uids = done_analysis(ctx)
    queue_deliveries(ctx, aid)
    now = utcnow()
    assert deliver_due(ctx, now=now) == 1  # down: one attempt this round
    with FakePacs(port, statuses=[0xA700]).running() as pacs:
        assert deliver_due(ctx, now=now) == 3  # one out of resources, two delivered
        assert deliver_due(ctx, now=now) == 1
        assert deliver_due(ctx, now=now) == 0
    assert sorted(pacs.received) == sorted(uids.values())
    assert sum(r.attempts for r in rows(ctx, aid).values()) == 5  # 1 refused + 1 out of resources + 3 stored
    assert {r.status for r in rows(ctx, aid).values()} == {S.DELIVERED}
    ctx.close()


def test_a_pacs_down_at_first_then_up_backoff_doubles(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port, objects=["sr"], backoff_s=10, max_attempts=5, timeout_s=5)])
    aid, _ = done_analysis(ctx, ("sr",))
    queue_deliveries(ctx, aid)
    t0 = utcnow()
    assert deliver_due(ctx, now=t0) == 1  # nothing listens on the port
    row = rows(ctx, aid)[("pacs", "sr")]
    assert (row.status, row.attempts) == (S.PENDING, 1) and "no association" in row.last_error
    assert as_utc(row.next_attempt_at) == t0 + timedelta(seconds=10)
    assert deliver_due(ctx, now=t0 + timedelta(seconds=9)) == 0  # not due yet
    assert deliver_due(ctx, now=t0 + timedelta(seconds=10)) == 1
    row = rows(ctx, aid)[("pacs", "sr")]
    assert row.attempts == 2 and as_utc(row.next_attempt_at) == t0 + timedelta(seconds=30)  # 10 s, then 20 s
    with FakePacs(port).running() as pacs:  # the PACS is back
        assert deliver_due(ctx, now=t0 + timedelta(seconds=30)) == 1
    row = rows(ctx, aid)[("pacs", "sr")]
    assert (row.status, row.attempts, row.last_error) == (S.DELIVERED, 3, None) and len(pacs.received) == 1
    ctx.close()


def test_attempts_are_bounded(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port, objects=["pdf"], backoff_s=0, max_attempts=3, timeout_s=5)])
    aid, _ = done_analysis(ctx, ("pdf",))
    queue_deliveries(ctx, aid)
    now = utcnow()
    assert [deliver_due(ctx, now=now) for _ in range(5)] == [1, 1, 1, 0, 0]
    row = rows(ctx, aid)[("pacs", "pdf")]
    assert (row.status, row.attempts) == (S.FAILED, 3) and "no association" in row.last_error
    ctx.close()


def test_an_unreachable_pacs_is_tried_once_per_round(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port, timeout_s=5)])
    aid, _ = done_analysis(ctx)
    queue_deliveries(ctx, aid)
    now = utcnow()
    assert deliver_due(ctx, now=now) == 1  # the other two objects wait for the next round
    assert sorted(r.attempts for r in rows(ctx, aid).values()) == [0, 0, 1]
    assert deliver_due(ctx, now=now) == 1  # the first backs off; the next object is tried
    assert sorted(r.attempts for r in rows(ctx, aid).values()) == [0, 1, 1]
    ctx.close()


def test_out_of_resources_is_retried_then_delivered(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port, objects=["sr"], backoff_s=0)])
    aid, _ = done_analysis(ctx, ("sr",))
    queue_deliveries(ctx, aid)
    with FakePacs(port, statuses=[0xA700]).running() as pacs:
        assert deliver_due(ctx) == 1
        row = rows(ctx, aid)[("pacs", "sr")]
        assert (row.status, row.attempts, row.last_status) == (S.PENDING, 1, 0xA700)
        assert "out of resources" in row.last_error
        assert deliver_due(ctx) == 1
    row = rows(ctx, aid)[("pacs", "sr")]
    assert (row.status, row.attempts, row.last_status) == (S.DELIVERED, 2, 0) and pacs.calls == 2
    ctx.close()


@pytest.mark.parametrize(
    ("pacs", "message"),
    [
        (dict(statuses=[0xA900]), "status 0xA900"),  # data set does not match the SOP class
        (dict(statuses=[0xC000]), "status 0xC000"),  # cannot understand
        (dict(classes=(CT_CLASS,)), "accepts no presentation context for SOP class"),
        (dict(ae_title="OTHER", check_called_aet=True), "association rejected (Rejected Permanent"),
    ],
    ids=["0xA900", "0xC000", "sop-class-refused", "called-ae-unknown"],
)
def test_a_permanent_refusal_fails_at_once(tmp_path: Path, port: int, pacs: dict, message: str) -> None:
    ctx = open_with(tmp_path, [cstore(port, objects=["seg"], backoff_s=0)])
    aid, _ = done_analysis(ctx, ("seg",))
    queue_deliveries(ctx, aid)
    with FakePacs(port, **pacs).running():
        assert deliver_due(ctx) == 1
        assert deliver_due(ctx, now=utcnow() + timedelta(days=1)) == 0  # never tried again
    row = rows(ctx, aid)[("pacs", "seg")]
    assert (row.status, row.attempts) == (S.FAILED, 1) and message in row.last_error, row.last_error
    ctx.close()


def test_a_warning_status_counts_as_delivered(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port, objects=["sr"])])
    aid, _ = done_analysis(ctx, ("sr",))
    queue_deliveries(ctx, aid)
    with FakePacs(port, statuses=[0xB000]).running():
        assert deliver_due(ctx) == 1
    row = rows(ctx, aid)[("pacs", "sr")]
    assert (row.status, row.last_status) == (S.DELIVERED, 0xB000) and "warning 0xB000" in row.last_error
    ctx.close()


# -- STOW-RS -------------------------------------------------------------------------------------------
def test_stow_rs_posts_multipart_related_with_basic_auth_and_retries_a_503(tmp_path: Path) -> None:
    with FakeStow(answers=[(503, None), (200, {})]).running() as web:
        dest = {"name": "web", "kind": "stowrs", "url": f"http://127.0.0.1:{web.port}/dicom-web/",
                "username": "lungcad", "password": "s3cret", "objects": ["pdf"], "backoff_s": 0}  # fmt: skip
        ctx = open_with(tmp_path, [dest])
        aid, _ = done_analysis(ctx, ("pdf",))
        queue_deliveries(ctx, aid)
        assert deliver_due(ctx) == 1
        row = rows(ctx, aid)[("web", "pdf")]
        assert (row.status, row.attempts, row.last_status) == (S.PENDING, 1, 503)
        assert deliver_due(ctx) == 1
    row = rows(ctx, aid)[("web", "pdf")]
    assert (row.status, row.attempts, row.last_status) == (S.DELIVERED, 2, 200)
    path, headers, body = web.requests[-1]
    assert path == "/dicom-web/studies"
    kind = headers["Content-Type"]
    assert kind.startswith("multipart/related;") and 'type="application/dicom"' in kind
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"lungcad:s3cret").decode()
    sent = ctx.storage.result_dir(aid) / "dicom" / "report_pdf.dcm"
    assert read_part(body, kind) == sent.read_bytes()  # the file as written, byte for byte
    ctx.close()


def _failed(reason: int) -> dict:
    """A STOW-RS answer body naming the object in its Failed SOP Sequence with ``reason``."""
    return {"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [reason]}}]}}


@pytest.mark.parametrize(
    ("answers", "status", "attempts"),
    [
        ([(401, None)], S.FAILED, 1),
        ([(404, None)], S.FAILED, 1),
        ([(429, None), (200, {})], S.DELIVERED, 2),
        (
            [(409, {"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xA900]}}]}})],
            S.FAILED,
            1,
        ),
        (
            [
                (202, {"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xA700]}}]}}),
                (200, {}),
            ],
            S.DELIVERED,
            2,
        ),
    ],  # fmt: skip
    ids=["401", "404", "429-then-200", "409-0xA900", "202-0xA700-then-200"],
)
def test_stow_rs_answers(tmp_path: Path, answers: list, status: ResultDeliveryStatus, attempts: int) -> None:
    with FakeStow(answers=list(answers)).running() as web:
        dest = {"name": "web", "kind": "stowrs", "url": f"http://127.0.0.1:{web.port}", "objects": ["sr"],
                "backoff_s": 0}  # fmt: skip
        ctx = open_with(tmp_path, [dest])
        aid, _ = done_analysis(ctx, ("sr",))
        queue_deliveries(ctx, aid)
        for _ in range(3):
            deliver_due(ctx)
    row = rows(ctx, aid)[("web", "sr")]
    assert (row.status, row.attempts) == (status, attempts), row.last_error
    assert len(web.requests) == attempts
    ctx.close()


def test_stow_rs_classification_table() -> None:
    failed = _failed(0xC000)
    warned = {"00081199": {"vr": "SQ", "Value": [{"00081196": {"vr": "US", "Value": [0xB000]}}]}}
    cases = [  # (HTTP status, JSON body) -> (ok, transient)
        (200, None, True, False),
        (202, warned, True, False),
        (202, failed, False, False),
        (500, None, False, True),
        (502, None, False, True),
        (501, None, False, False),
        (408, None, False, True),
        (400, None, False, False),
        (413, None, False, False),
    ]
    for code, doc, ok, transient in cases:
        out = classify_response(code, doc)
        assert (out.ok, out.transient) == (ok, transient), (code, doc, out)
    assert "warning reason 0xB000" in classify_response(202, warned).error


def test_stow_rs_to_a_closed_port_is_transient(tmp_path: Path, port: int) -> None:
    dest = {"name": "web", "kind": "stowrs", "url": f"http://127.0.0.1:{port}", "objects": ["sr"]}
    ctx = open_with(tmp_path, [dest])
    aid, _ = done_analysis(ctx, ("sr",))
    queue_deliveries(ctx, aid)
    assert deliver_due(ctx) == 1
    row = rows(ctx, aid)[("web", "sr")]
    assert (row.status, row.attempts, row.last_status) == (
        S.PENDING,
        1,
        None,
    ) and "ConnectError" in row.last_error
    ctx.close()


# -- settings changing under queued rows ---------------------------------------------------------------
def test_disabled_destinations_wait_removed_ones_fail(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port, objects=["sr"]), cstore(port, name="gone", objects=["sr"])])
    aid, _ = done_analysis(ctx, ("sr",))
    queue_deliveries(ctx, aid)
    ctx.close()
    dests = [cstore(port, objects=["sr"], enabled=False)]  # "pacs" disabled, "gone" removed
    ctx = open_with(tmp_path, dests)
    assert deliver_due(ctx) == 0
    got = rows(ctx, aid)
    assert (got[("pacs", "sr")].status, got[("pacs", "sr")].attempts) == (S.PENDING, 0)
    assert got[("gone", "sr")].status is S.FAILED and "no longer configured" in got[("gone", "sr")].last_error
    ctx.close()


# -- the API -------------------------------------------------------------------------------------------
def test_the_delivery_log_routes(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port, objects=["sr"], max_attempts=1)])
    aid, uids = done_analysis(ctx, ("sr",))
    queue_deliveries(ctx, aid)
    assert deliver_due(ctx) == 1  # down: the only attempt fails
    with transaction(ctx.sessions) as s:
        keys = {role: create_key(s, role).key for role in ("viewer", "service", "admin")}
    with TestClient(create_app(ctx=ctx)) as client:
        r = client.get(f"{API}/analyses/{aid}/deliveries", headers={"X-API-Key": keys["viewer"]})
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        assert (item["destination"], item["object"], item["status"], item["attempts"]) == (
            "pacs",
            "sr",
            "failed",
            1,
        )
        assert item["sop_instance_uid"] == uids["sr"] and "no association" in item["last_error"]
        assert item["next_attempt_at"] is None and item["last_attempt_at"] is not None
        assert client.get(f"{API}/analyses/{aid}/deliveries").status_code == 401
        missing = client.get(f"{API}/analyses/{'0' * 32}/deliveries", headers={"X-API-Key": keys["viewer"]})
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        retry = f"{API}/analyses/{aid}/deliveries/retry"
        assert client.post(retry, headers={"X-API-Key": keys["viewer"]}).status_code == 403
        with FakePacs(port).running():
            r = client.post(retry, headers={"X-API-Key": keys["service"]})
            assert r.status_code == 200, r.text
            assert [(i["status"], i["attempts"]) for i in r.json()["items"]] == [("pending", 0)]
            assert deliver_due(ctx) == 1
        r = client.get(f"{API}/analyses/{aid}/deliveries", headers={"X-API-Key": keys["admin"]})
        assert [(i["status"], i["attempts"]) for i in r.json()["items"]] == [("delivered", 1)]
        metrics = client.get("/metrics").text  # a gauge by destination and status, for alerts
        assert 'lungcad_result_deliveries{destination="pacs",status="delivered"} 1.0' in metrics
    ctx.close()


def test_retry_of_an_analysis_not_done_is_a_409(tmp_path: Path, port: int) -> None:
    ctx = open_with(tmp_path, [cstore(port)])
    aid, _ = done_analysis(ctx)
    with transaction(ctx.sessions) as s:
        s.execute(update(Analysis).where(Analysis.id == aid).values(status=AnalysisStatus.RUNNING))
        key = create_key(s, "admin").key
    with TestClient(create_app(ctx=ctx)) as client:
        r = client.post(f"{API}/analyses/{aid}/deliveries/retry", headers={"X-API-Key": key})
    assert r.status_code == 409 and "not done" in r.json()["message"]
    ctx.close()


def test_the_compose_destination_is_valid_and_names_its_orthanc() -> None:
    env = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["worker"]["environment"]
    value = env["LUNGCAD_DELIVERY_DESTINATIONS"]
    (dest,) = load_settings(
        "/tmp/unused", environ={"LUNGCAD_DELIVERY_DESTINATIONS": value}
    ).delivery_destinations
    orthanc = json.loads((REPO / "deploy/orthanc/orthanc.json").read_text())
    assert (dest.kind, dest.host, dest.port, dest.called_ae) == ("cstore", "orthanc", orthanc["DicomPort"],
                                                                 orthanc["DicomAet"])  # fmt: skip
