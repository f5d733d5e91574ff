"""Webhooks against a real receiver: an ``http.server`` on loopback that checks every request's signature
with ``verify_signature`` (answering 401 when it does not verify) and records what it got.

Analyses finish for real in immediate mode (the bundled slab through the detector; a study without stored
instances fails in the runner), deliveries are sent by ``deliver_due`` called directly, and retries are
stepped with a fake ``now`` instead of sleeping through the backoff.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from lungcad.service import webhooks
from lungcad.service.db.models import DeliveryStatus, Study, TrainingJobState, WebhookDelivery
from lungcad.service.db.session import as_utc, utcnow
from lungcad.service.webhooks import deliver_due, emit, signature, verify_signature
from tests.service.conftest import SLAB
from tests.service.helpers_analyses import add_study, store_folder

API = "/api/v1"
ANALYSIS_KEYS = {"analysis_id", "study_id", "batch_id", "status", "lung_rads", "n_findings", "cached"}


@dataclass
class Got:
    headers: dict[str, str]  # lower-case names
    body: bytes
    verified: bool

    @property
    def doc(self) -> dict:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        ok = verify_signature(
            self.server.secret, headers.get("x-lungcad-timestamp"), body, headers.get("x-lungcad-signature")
        )
        with self.server.lock:
            self.server.got.append(Got(headers, body, ok))
            code = (self.server.codes.pop(0) if self.server.codes else 200) if ok else 401
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1: ``secret`` to verify with, ``codes`` to answer (then 200)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret = ""
        self.codes: list[int] = []
        self.got: list[Got] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook?src=lungcad"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _register(client, headers, receiver: Receiver, events: list[str] | None = None) -> str:
    r = client.post(
        f"{API}/webhooks",
        json={"url": receiver.url, "events": events or ["analysis.done", "analysis.failed"]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["secret"].startswith("whsec_")
    receiver.secret = r.json()["secret"]
    return r.json()["id"]


def _deliveries(ctx) -> list[WebhookDelivery]:
    with ctx.sessions() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)).all())


def test_a_real_analysis_done_and_failed_are_signed_deliveries(client, ctx, admin_headers, receiver) -> None:
    hook = _register(client, admin_headers, receiver)
    r = client.post(f"{API}/analyses", json={"study_id": store_folder(ctx, SLAB)}, headers=admin_headers)
    assert r.status_code == 202, r.text
    done = client.get(f"{API}/analyses/{r.json()['id']}", headers=admin_headers).json()
    assert done["status"] == "done", done
    bad = client.post(f"{API}/analyses", json={"study_id": add_study(ctx)}, headers=admin_headers).json()
    failed = client.get(f"{API}/analyses/{bad['id']}", headers=admin_headers).json()
    assert failed["status"] == "failed", failed  # no stored instances: the runner fails it

    assert deliver_due(ctx) == 2
    assert deliver_due(ctx) == 0  # delivered: not sent again
    assert len(receiver.got) == 2 and all(g.verified for g in receiver.got)
    by_event = {g.headers["x-lungcad-event"]: g for g in receiver.got}
    ok, ko = by_event["analysis.done"], by_event["analysis.failed"]
    assert ok.doc["event"] == "analysis.done" and ok.doc["delivery_id"] == ok.headers["x-lungcad-delivery"]
    assert ok.doc["data"]["analysis_id"] == done["id"] and ok.doc["data"]["study_id"] == done["study_id"]
    assert ok.doc["data"]["status"] == "done" and ok.doc["data"]["n_findings"] == done["n_findings"]
    assert ok.doc["data"]["lung_rads"] == done["lung_rads"]
    assert ko.doc["data"] == {**ko.doc["data"], "analysis_id": bad["id"], "status": "failed"}
    sig = signature(receiver.secret, ok.headers["x-lungcad-timestamp"], ok.body)
    assert ok.headers["x-lungcad-signature"] == sig and sig.startswith("sha256=") and len(sig) == 71

    log = client.get(f"{API}/webhooks/{hook}/deliveries", headers=admin_headers).json()
    assert log["total"] == 2 and {d["status"] for d in log["items"]} == {"delivered"}
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in log["items"])
    assert all(d["next_attempt_at"] is None and d["delivered_at"] for d in log["items"])


def test_500_twice_then_200_is_delivered_on_attempt_3_after_backoff(
    ctx, client, admin_headers, receiver
) -> None:
    hook = _register(client, admin_headers, receiver)
    receiver.codes = [500, 500]
    assert emit(ctx, "analysis.done", {"analysis_id": "a1", "status": "done"}) == 1
    assert emit(ctx, "training.done", {"training_job_id": "t1"}) == 0  # not an event it asked for
    t0 = utcnow()
    steps = [(0, 1, "pending", 1), (1.9, 0, "pending", 1), (2, 1, "pending", 2), (5.9, 0, "pending", 2)]
    steps.append((6, 1, "delivered", 3))
    for at, sent, status, attempts in steps:
        assert deliver_due(ctx, now=t0 + timedelta(seconds=at)) == sent, at
        (row,) = _deliveries(ctx)
        assert (row.status.value, row.attempts) == (status, attempts), at
    assert as_utc(row.delivered_at) == t0 + timedelta(seconds=6) and row.last_status_code == 200
    assert len(receiver.got) == 3 and all(g.verified for g in receiver.got)
    assert len({g.headers["x-lungcad-delivery"] for g in receiver.got}) == 1  # one delivery, three attempts
    assert len({g.body for g in receiver.got}) == 1  # the same bytes each time
    stamps = [int(g.headers["x-lungcad-timestamp"]) for g in receiver.got]
    assert stamps[1] - stamps[0] in (1, 2, 3) and stamps[2] - stamps[1] in (3, 4, 5)  # a fresh one each try
    assert deliver_due(ctx, now=t0 + timedelta(hours=1)) == 0
    page = client.get(f"{API}/webhooks/{hook}/deliveries?status=delivered", headers=admin_headers).json()
    assert page["total"] == 1 and page["items"][0]["attempts"] == 3


def _closed_port() -> int:
    with socket.socket() as sock:  # bound then closed: nothing listens there (connection refused)
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_receiver_fails_after_max_attempts(ctx, client, admin_headers) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    r = client.post(
        f"{API}/webhooks", json={"url": url, "events": ["analysis.failed"]}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    emit(ctx, "analysis.failed", {"analysis_id": "a1", "status": "failed"})
    now, waits = utcnow(), []
    for attempt in range(1, webhooks.MAX_ATTEMPTS + 1):
        assert deliver_due(ctx, now=now) == 1
        (row,) = _deliveries(ctx)
        assert row.attempts == attempt and row.last_status_code is None and "Connect" in row.last_error
        if attempt < webhooks.MAX_ATTEMPTS:
            waits.append((as_utc(row.next_attempt_at) - now).total_seconds())
            now = as_utc(row.next_attempt_at)
    assert waits == [2, 4, 8, 16, 32]
    assert row.status is DeliveryStatus.FAILED
    assert deliver_due(ctx, now=now + timedelta(days=1)) == 0
    assert (
        client.get(f"{API}/webhooks/{hook}/deliveries?status=failed", headers=admin_headers).json()["total"]
        == 1
    )


def test_tampered_body_old_timestamp_and_wrong_secret_do_not_verify(
    ctx, client, admin_headers, receiver
) -> None:
    _register(client, admin_headers, receiver)
    emit(ctx, "analysis.done", {"analysis_id": "a1", "status": "done", "n_findings": 2})
    assert deliver_due(ctx) == 1
    (got,) = receiver.got
    ts, sig, body = got.headers["x-lungcad-timestamp"], got.headers["x-lungcad-signature"], got.body
    assert verify_signature(receiver.secret, ts, body, sig)
    tampered = body.replace(b'"n_findings":2', b'"n_findings":0')
    assert tampered != body and not verify_signature(receiver.secret, ts, tampered, sig)
    assert not verify_signature(receiver.secret, str(int(ts) + 1), body, sig)  # the timestamp is signed
    assert not verify_signature("whsec_other", ts, body, sig)
    assert not verify_signature(receiver.secret, ts, body, sig.replace("sha256=", "sha1="))
    for header, stamp in ((None, ts), ("", ts), (sig, None), (sig, "yesterday")):
        assert not verify_signature(receiver.secret, stamp, body, header)
    # a captured request replayed later: its timestamp is out of the tolerance
    assert verify_signature(receiver.secret, ts, body, sig, now=int(ts) + 300)
    assert not verify_signature(receiver.secret, ts, body, sig, now=int(ts) + 301)
    assert not verify_signature(receiver.secret, ts, body, sig, tolerance_s=10, now=int(ts) + 11)
    # the receiver itself refuses a request whose signature does not match (401): not delivered
    receiver.secret = "whsec_rotated"
    emit(ctx, "analysis.done", {"analysis_id": "a2", "status": "done"})
    assert deliver_due(ctx) == 1
    assert not receiver.got[-1].verified
    row = [d for d in _deliveries(ctx) if d.payload["analysis_id"] == "a2"][0]
    assert (
        row.status is DeliveryStatus.PENDING and row.last_status_code == 401 and row.last_error == "HTTP 401"
    )


def test_no_patient_data_in_payloads(client, ctx, admin_headers, receiver) -> None:
    _register(client, admin_headers, receiver)
    sid = add_study(ctx, patient_id="PAT-SECRET-4711", patient_name="Geheim^Greta")
    r = client.post(f"{API}/analyses", json={"study_id": sid}, headers=admin_headers)
    assert r.status_code == 202, r.text
    assert deliver_due(ctx) == 1
    (got,) = receiver.got
    assert got.verified and got.doc["data"]["study_id"] == sid
    assert set(got.doc["data"]) <= ANALYSIS_KEYS and set(got.doc) == {
        "created_at",
        "data",
        "delivery_id",
        "event",
    }
    with ctx.sessions() as s:
        study = s.get(Study, sid)
        phi = [study.patient_id, "Geheim", "Greta", study.study_uid, study.patient_id_hash]
    sent = got.body.decode() + json.dumps(got.headers)
    assert not [p for p in phi if p and p in sent]
    logged = json.dumps(client.get(f"{API}/webhooks", headers=admin_headers).json())
    assert receiver.secret not in logged  # the secret is never listed


def test_delete_stops_deliveries(client, ctx, admin_headers, receiver) -> None:
    hook = _register(client, admin_headers, receiver)
    receiver.codes = [503]
    emit(ctx, "analysis.done", {"analysis_id": "a1", "status": "done"})
    t0 = utcnow()
    assert deliver_due(ctx, now=t0) == 1  # failed once: a retry is pending
    emit(ctx, "analysis.done", {"analysis_id": "a2", "status": "done"})  # and a fresh one
    r = client.delete(f"{API}/webhooks/{hook}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["id"] == hook and "secret" not in r.json()
    assert deliver_due(ctx, now=t0 + timedelta(hours=1)) == 0
    assert len(receiver.got) == 1 and _deliveries(ctx) == []
    assert emit(ctx, "analysis.done", {"analysis_id": "a3", "status": "done"}) == 0
    assert client.get(f"{API}/webhooks/{hook}/deliveries", headers=admin_headers).status_code == 404
    assert client.delete(f"{API}/webhooks/{hook}", headers=admin_headers).status_code == 404
    assert client.get(f"{API}/webhooks", headers=admin_headers).json()["total"] == 0


def test_routes_validate_and_ping(client, ctx, admin_headers, make_key, receiver) -> None:
    url = receiver.url
    for body in (
        {"url": "ftp://example.org/x", "events": ["analysis.done"]},
        {"url": "not a url", "events": ["analysis.done"]},
        {"url": "http://user:pw@example.org/", "events": ["analysis.done"]},
        {"url": url, "events": []},
        {"url": url, "events": ["analysis.started"]},
        {"url": url, "events": ["analysis.done"], "secret": "mine"},
    ):
        r = client.post(f"{API}/webhooks", json=body, headers=admin_headers)
        assert r.status_code == 422, (body, r.text)
    for role in ("radiologist", "researcher", "service", "viewer"):
        key = {"X-API-Key": make_key(role)}
        assert client.get(f"{API}/webhooks", headers=key).status_code == 403
        r = client.post(f"{API}/webhooks", json={"url": url, "events": ["analysis.done"]}, headers=key)
        assert r.status_code == 403
    hook = _register(client, admin_headers, receiver, events=["training.done", "training.done"])
    listed = client.get(f"{API}/webhooks", headers=admin_headers).json()
    assert listed["total"] == 1 and listed["items"][0]["events"] == ["training.done"]
    assert "secret" not in listed["items"][0]
    r = client.post(f"{API}/webhooks/{hook}/test", headers=admin_headers)
    assert r.status_code == 202 and r.json()["event"] == "ping" and r.json()["status"] == "pending"
    assert client.post(f"{API}/webhooks/{'0' * 32}/test", headers=admin_headers).status_code == 404
    assert client.post(f"{API}/webhooks/nothex/test", headers=admin_headers).status_code == 422
    assert deliver_due(ctx) == 1
    (got,) = receiver.got
    assert (
        got.verified and got.headers["x-lungcad-event"] == "ping" and got.doc["data"] == {"webhook_id": hook}
    )


def test_training_events_and_emit_never_raises(ctx, client, admin_headers, receiver) -> None:
    _register(client, admin_headers, receiver, events=["training.done", "training.failed"])
    assert webhooks.emit_training(ctx, "job1", TrainingJobState.FINISHED) == 1
    assert webhooks.emit_training(ctx, "job2", TrainingJobState.FAILED) == 1
    assert webhooks.emit_training(ctx, "job3", TrainingJobState.PAUSED) == 0
    assert emit(ctx, "training.done", {"not": object()}) == 0  # not JSON: logged, not raised
    assert webhooks.emit_analysis(ctx, "no-such-analysis") == 0
    assert deliver_due(ctx) == 2
    got = sorted((g.headers["x-lungcad-event"], g.doc["data"]["training_job_id"]) for g in receiver.got)
    assert got == [("training.done", "job1"), ("training.failed", "job2")]


def test_two_senders_never_send_one_delivery_twice(ctx, client, admin_headers, receiver) -> None:
    _register(client, admin_headers, receiver)
    for i in range(12):
        emit(ctx, "analysis.done", {"analysis_id": f"a{i}", "status": "done"})
    start = threading.Barrier(2)
    counts: list[int] = []

    def send() -> None:
        start.wait()
        counts.append(deliver_due(ctx))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = [g.headers["x-lungcad-delivery"] for g in receiver.got]
    assert sum(counts) == 12 and len(ids) == 12 and len(set(ids)) == 12
    assert {d.status for d in _deliveries(ctx)} == {DeliveryStatus.DELIVERED}


def test_the_delivery_thread_sends_due_deliveries(ctx, client, admin_headers, receiver) -> None:
    _register(client, admin_headers, receiver)
    stop = threading.Event()
    thread = webhooks.start_delivery_thread(ctx, stop, interval_s=0.05)
    try:
        emit(ctx, "analysis.done", {"analysis_id": "a1", "status": "done"})
        for _ in range(200):
            if receiver.got:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert len(receiver.got) == 1 and receiver.got[0].verified and not thread.is_alive()
