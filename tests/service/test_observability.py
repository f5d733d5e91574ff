"""Observability of the service: request ids, the JSON access log (route templates, no PHI), /healthz and
/readyz (ok on a fresh data folder; 503 with the reason for a damaged model file, unwritable storage, an
un-migrated database, too little disk), /metrics (parses, per-app registry, request histogram by route
template, job histograms from the database) and the Prometheus alert rules (promtool)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
import structlog
import yaml
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lungcad.log import configure_logging, get_logger
from lungcad.service.app import create_app
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Analysis, AnalysisStatus, Series, Study
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.deps import require
from lungcad.service.models_registry import active_model
from lungcad.service.security import Action, Principal
from lungcad.service.settings import ServiceSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "prometheus"
PATIENT = "Doe^Jane"
PATIENT_ID = "PID-7734215"


def _probe_router() -> APIRouter:
    """A route with an id in its path and an authenticated caller (the resource routers are still stubs)."""
    router = APIRouter()

    @router.get("/probe/{study_id}")
    def probe(
        study_id: str, principal: Annotated[Principal, Depends(require(Action.STUDY_READ))]
    ) -> dict[str, str]:
        get_logger("lungcad.service").info("probe_work", items=3)  # a log line inside the request
        return {"study_id": study_id}

    @router.get("/boom")
    def boom() -> dict[str, str]:
        raise RuntimeError("a bug")

    return router


def _app(ctx: ServiceContext) -> FastAPI:
    app = create_app(ctx=ctx)
    app.include_router(_probe_router(), prefix="/api/v1")
    return app


@pytest.fixture
def app_client(ctx: ServiceContext) -> Iterator[TestClient]:
    with TestClient(_app(ctx), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict]]]:
    """structlog configured for JSON at DEBUG; the fixture returns a reader of the lines logged so far."""
    configure_logging(json=True, level="DEBUG")
    capsys.readouterr()

    def read() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]

    yield read
    structlog.reset_defaults()


def _metrics(client: TestClient) -> dict[str, object]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


# -- request ids and the access log -------------------------------------------------------------------


def test_request_id_is_returned_and_generated(app_client: TestClient) -> None:
    r = app_client.get("/healthz", headers={"X-Request-ID": "abc.DEF-123_x"})
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["x-request-id"] == "abc.DEF-123_x"

    generated = {app_client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", g) for g in generated)

    # invalid: bad characters, too long -> replaced by a fresh id, the request still served
    for bad in ("a b", "x" * 129, "id;drop", "ünï".encode()):
        r = app_client.get("/healthz", headers={"X-Request-ID": bad})
        assert r.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), bad
    assert (
        app_client.get("/healthz", headers={"X-Request-ID": "y" * 128}).headers["x-request-id"] == "y" * 128
    )


def test_access_log_is_json_with_route_template_and_no_phi(
    app_client: TestClient, make_key: Callable[[str], str], json_logs: Callable[[], list[dict]]
) -> None:
    key = make_key("viewer")
    r = app_client.get(
        "/api/v1/probe/st-0042",
        params={"patient_name": PATIENT, "PatientID": PATIENT_ID},
        headers={"X-API-Key": key, "X-Request-ID": "req-1"},
    )
    assert r.status_code == 200
    lines = json_logs()
    raw = json.dumps(lines)
    assert PATIENT not in raw and "Doe" not in raw and PATIENT_ID not in raw
    assert "st-0042" not in raw  # the id in the path is not logged either: the template is
    access = [e for e in lines if e.get("event") == "request"]
    assert len(access) == 1
    event = access[0]
    assert event["route"] == "/api/v1/probe/{study_id}"
    assert event["method"] == "GET" and event["status"] == 200 and event["request_id"] == "req-1"
    assert event["logger"] == "lungcad.access" and event["level"] == "info"
    assert 0 < event["duration_ms"] < 10_000
    assert event["key_prefix"] == key.split("_")[1] and key not in raw
    # a log line written inside the request carries the request id (structlog context variables)
    work = [e for e in lines if e.get("event") == "probe_work"]
    assert work and work[0]["request_id"] == "req-1"

    # after the request the id is unbound again
    get_logger("lungcad.service").info("outside")
    assert "request_id" not in [e for e in json_logs() if e["event"] == "outside"][0]


def test_access_log_levels_and_unmatched_routes(
    app_client: TestClient, json_logs: Callable[[], list[dict]]
) -> None:
    app_client.get("/healthz")
    app_client.get("/no/such/path/patient-Doe")
    boom = app_client.get("/api/v1/boom", headers={"X-Request-ID": "bug-1"})
    assert boom.status_code == 500 and boom.headers["x-request-id"] == "bug-1"  # quotable by the caller
    assert boom.json()["error"] == "internal_error" and "a bug" not in boom.text
    assert app_client.get("/api/v1/probe/x").status_code == 401  # no key: no key prefix
    access = {e["route"]: e for e in json_logs() if e.get("event") == "request"}
    assert access["/healthz"]["level"] == "debug"
    assert access["unmatched"]["status"] == 404 and "Doe" not in json.dumps(access)
    assert access["/api/v1/boom"]["status"] == 500 and access["/api/v1/boom"]["level"] == "error"
    assert access["/api/v1/probe/{study_id}"]["status"] == 401
    assert "key_prefix" not in access["/api/v1/probe/{study_id}"]


# -- health and readiness ----------------------------------------------------------------------------


def test_readyz_ok_on_a_fresh_context(app_client: TestClient) -> None:
    r = app_client.get("/readyz")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "queue", "storage", "disk", "model"}
    assert all(c["ok"] and isinstance(c["detail"], str) for c in body["checks"].values())
    assert "lungcad-default" in body["checks"]["model"]["detail"]
    # no leftovers of the storage probe
    assert not list(app_client.app.state.ctx.storage.tmp.glob(".readyz-*"))


@pytest.mark.parametrize("damage", ["junk", "truncated"])
def test_readyz_fails_for_a_corrupt_model_file(ctx: ServiceContext, damage: str) -> None:
    with ctx.sessions() as s:
        digest = active_model(s).sha256
    blob = ctx.storage.blob_path(digest)
    data = blob.read_bytes()
    blob.write_bytes(b"not a model at all" if damage == "junk" else data[: len(data) // 2])
    with TestClient(_app(ctx)) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "fail"
    assert body["checks"]["model"]["ok"] is False
    assert "damaged" in body["checks"]["model"]["detail"]
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]


def test_readyz_fails_for_a_missing_model_file(ctx: ServiceContext) -> None:
    with ctx.sessions() as s:
        ctx.storage.blob_path(active_model(s).sha256).unlink()
    with TestClient(_app(ctx)) as client:
        r = client.get("/readyz")
    assert r.status_code == 503 and "missing" in r.json()["checks"]["model"]["detail"]


def test_readyz_model_verdict_is_cached_until_the_file_changes(ctx: ServiceContext) -> None:
    app = _app(ctx)
    readiness = app.state.readiness
    readiness.cache_s = 0.0
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert len(readiness._model_verdicts) == 1
        with ctx.sessions() as s:
            blob = ctx.storage.blob_path(active_model(s).sha256)
        blob.write_bytes(b"x" + blob.read_bytes()[1:])  # same size, new content and mtime
        r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["model"]["ok"] is False


def test_readyz_fails_when_storage_is_not_writable(ctx: ServiceContext) -> None:
    # root ignores permission bits, so the staging folder is replaced by a regular file instead
    shutil.rmtree(ctx.storage.tmp)
    ctx.storage.tmp.write_bytes(b"")
    try:
        with TestClient(_app(ctx)) as client:
            r = client.get("/readyz")
            assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        ctx.storage.tmp.unlink()
        ctx.storage.tmp.mkdir()
    assert r.status_code == 503
    check = r.json()["checks"]["storage"]
    assert check["ok"] is False and "tmp" in check["detail"]


def test_readyz_fails_below_the_free_disk_threshold(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data", environ={}, queue_immediate=True, min_free_disk_bytes=2**62)
    context = open_context(settings)
    try:
        with TestClient(_app(context)) as client:
            r = client.get("/readyz")
            families = _metrics(client)
    finally:
        context.close()
    assert r.status_code == 503
    assert r.json()["checks"]["disk"]["ok"] is False and "required" in r.json()["checks"]["disk"]["detail"]
    ready = {s.labels.get("check"): s.value for s in families["lungcad_readiness_check_ok"].samples}
    assert ready["disk"] == 0.0 and ready["model"] == 1.0
    assert families["lungcad_ready"].samples[0].value == 0.0


def test_readyz_fails_for_an_unmigrated_database(ctx: ServiceContext) -> None:
    from sqlalchemy import text

    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    with TestClient(_app(ctx)) as client:
        r = client.get("/readyz")
    assert r.status_code == 503 and "migrate" in r.json()["checks"]["database"]["detail"]


def test_readyz_is_cheap(app_client: TestClient) -> None:
    import time

    readiness = app_client.app.state.readiness
    readiness.cache_s = 0.0
    app_client.get("/readyz")  # the model verdict (hash of the file) once
    t0 = time.perf_counter()
    for _ in range(5):
        assert app_client.get("/readyz").status_code == 200
    # generous for a shared 2-core machine; typical is a few ms per round
    assert (time.perf_counter() - t0) / 5 < 0.2


# -- metrics -----------------------------------------------------------------------------------------


def test_metrics_parse_and_histogram_by_route_template(
    app_client: TestClient, make_key: Callable[[str], str]
) -> None:
    key = make_key("viewer")
    for study in ("a1", "b2"):
        assert app_client.get(f"/api/v1/probe/{study}", headers={"X-API-Key": key}).status_code == 200
    families = _metrics(app_client)
    hist = families["lungcad_http_request_duration_seconds"]
    assert hist.type == "histogram"
    counts = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in hist.samples
        if s.name.endswith("_count")
    }
    assert counts[("GET", "/api/v1/probe/{study_id}", "200")] == 2
    assert not any("a1" in s.labels.get("route", "") for s in hist.samples)
    assert families["lungcad_http_requests_in_flight"].samples[0].value == 1.0  # the scrape itself
    depth = {s.labels["state"]: s.value for s in families["lungcad_queue_depth"].samples}
    assert depth == {"queued": 0.0, "running": 0.0}
    assert families["lungcad_analysis_failures"].samples[0].value == 0.0
    info = families["lungcad_active_model_info"].samples[0].labels
    assert info["model_id"] == "lungcad-default" and len(info["sha256_prefix"]) == 12
    assert families["lungcad_data_disk_free_bytes"].samples[0].value > 0
    assert families["lungcad_ready"].samples[0].value == 1.0
    assert families["lungcad_metrics_database_up"].samples[0].value == 1.0


def test_metrics_registry_is_per_app(ctx: ServiceContext) -> None:
    with TestClient(_app(ctx)) as one, TestClient(_app(ctx)) as two:
        one.get("/healthz")
        one.get("/healthz")
        two.get("/healthz")

        def healthz_count(client: TestClient) -> float:
            hist = _metrics(client)["lungcad_http_request_duration_seconds"]
            return next(
                s.value for s in hist.samples if s.name.endswith("_count") and s.labels["route"] == "/healthz"
            )

        assert healthz_count(one) == 2 and healthz_count(two) == 1


def _add_analyses(ctx: ServiceContext, n_done: int, n_failed: int, n_queued: int) -> None:
    """Rows as a worker leaves them, with a published result.json carrying the detector's timings."""
    with ctx.sessions() as s:
        model = active_model(s)
    from lungcad.service.models_registry import effective_config, record_config

    config_hash = record_config(ctx, effective_config(ctx, model))
    now = utcnow()
    with transaction(ctx.sessions) as s:
        s.add(Study(id="s1", study_uid="1.2.3", patient_name=PATIENT, created_at=now, updated_at=now))
        s.add(Series(id="se1", study_id="s1", series_uid="1.2.3.4", usable=True))
        statuses = (
            [AnalysisStatus.DONE] * n_done
            + [AnalysisStatus.FAILED] * n_failed
            + [AnalysisStatus.QUEUED] * n_queued
        )
        for k, status in enumerate(statuses):
            finished = now - timedelta(minutes=len(statuses) - k)
            done = status is AnalysisStatus.DONE
            result_dir = f"r{k}" if done else None
            if done:
                folder = ctx.storage.result_dir(result_dir)
                folder.mkdir()
                timings = {"load": 0.5, "preprocess": 2.0, "network": 4.0 + k, "postprocess": 0.3, "total": 9}
                (folder / "result.json").write_text(json.dumps({"timings_s": timings}))
            s.add(
                Analysis(
                    id=f"a{k}",
                    study_id="s1",
                    series_uid="1.2.3.4",
                    model_sha256=model.sha256,
                    config_hash=config_hash,
                    status=status,
                    created_at=finished - timedelta(seconds=60),
                    started_at=None if status is AnalysisStatus.QUEUED else finished - timedelta(seconds=12),
                    finished_at=None if status is AnalysisStatus.QUEUED else finished,
                    result_dir=result_dir,
                )
            )


def test_metrics_from_the_database(app_client: TestClient) -> None:
    ctx = app_client.app.state.ctx
    _add_analyses(ctx, n_done=2, n_failed=1, n_queued=3)
    families = _metrics(app_client)
    depth = {s.labels["state"]: s.value for s in families["lungcad_queue_depth"].samples}
    assert depth == {"queued": 3.0, "running": 0.0}
    per_status = {s.labels["status"]: s.value for s in families["lungcad_analyses"].samples}
    assert per_status["done"] == 2 and per_status["failed"] == 1 and per_status["cancelled"] == 0
    assert families["lungcad_analysis_failures"].samples[0].name == "lungcad_analysis_failures_total"
    assert families["lungcad_analysis_failures"].samples[0].value == 1.0

    def samples(name: str) -> dict[tuple, float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families[name].samples}

    job = samples("lungcad_job_duration_seconds")
    assert job[("lungcad_job_duration_seconds_count", ())] == 2
    assert job[("lungcad_job_duration_seconds_sum", ())] == pytest.approx(24.0)
    stage = samples("lungcad_job_stage_duration_seconds")
    assert stage[("lungcad_job_stage_duration_seconds_count", (("stage", "network"),))] == 2
    assert ("lungcad_job_stage_duration_seconds_count", (("stage", "total"),)) not in stage
    inference = samples("lungcad_model_inference_seconds")
    assert inference[("lungcad_model_inference_seconds_sum", ())] == pytest.approx(4.0 + 5.0)

    # a second scrape feeds nothing twice
    families = _metrics(app_client)
    job = samples("lungcad_job_duration_seconds")
    assert job[("lungcad_job_duration_seconds_count", ())] == 2
    text = app_client.get("/metrics").text
    assert PATIENT not in text and "1.2.3.4" not in text and "a0" not in re.findall(r'"(a\d)"', text)


# -- alert rules -------------------------------------------------------------------------------------


def test_alert_rules_reference_exported_metrics(app_client: TestClient) -> None:
    app_client.get("/healthz")
    exported = set()
    for family in text_string_to_metric_families(app_client.get("/metrics").text):
        exported.update(s.name for s in family.samples)
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    names = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.update(re.findall(r"\blungcad_[a-z_]+", rule["expr"]))
    assert names, "no lungcad metric in the alert rules"
    assert names <= exported, f"alert rules use metrics the service does not export: {names - exported}"


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian package prometheus; .ci/run installs it)",
)
def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    check = subprocess.run(
        ["promtool", "check", "rules", "alerts.yml"], cwd=DEPLOY, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    unit = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_settings_min_free_disk_default() -> None:
    assert ServiceSettings(data_dir=Path("/x")).min_free_disk_bytes == 1024**3


# -- the queue check against real stores ---------------------------------------------------------------


def _readyz(settings: ServiceSettings) -> dict:
    context = open_context(settings)
    try:
        with TestClient(_app(context)) as client:
            r = client.get("/readyz")
    finally:
        context.close()
    body = r.json()
    assert (r.status_code == 200) == (body["status"] == "ok")
    return body


def test_readyz_queue_sqlite(tmp_path: Path) -> None:
    body = _readyz(load_settings(tmp_path / "data", environ={}))
    assert body["status"] == "ok", body
    assert body["checks"]["queue"]["detail"].startswith("sqlite")


def test_readyz_queue_redis(tmp_path: Path, redis_url: str) -> None:
    body = _readyz(load_settings(tmp_path / "data", environ={}, queue_url=redis_url))
    assert body["status"] == "ok", body
    assert body["checks"]["queue"]["detail"].startswith("redis")


def test_readyz_fails_when_redis_is_unreachable(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.perf_counter()
    body = _readyz(load_settings(tmp_path / "data", environ={}, queue_url=f"redis://127.0.0.1:{port}/0"))
    assert body["status"] == "fail" and body["checks"]["queue"]["ok"] is False
    assert "onnect" in body["checks"]["queue"]["detail"]  # ConnectionError: ... refused
    assert body["checks"]["database"]["ok"]
    assert time.perf_counter() - t0 < 20
