"""No PHI where it does not belong: a study full of patient identifiers (``helpers_phi.PHI_FIELDS``: name,
ID, birth date, accession number, institution, referring physician) goes through every route, and

* no response to a role without ``phi.read`` (viewer, researcher) carries any of them -- JSON bodies, the
  findings CSV, result files (those that name the patient -- the report, DICOM SEG / SR / PDF -- are refused
  to those roles and left out of their listing);
* no log line does: structlog JSON at DEBUG, Python ``logging`` at DEBUG (uvicorn, huey, sqlalchemy...), of
  the in-process app and of real ``lungcad serve`` / ``lungcad worker`` processes (``--log-json``);
* neither do ``/metrics`` and ``/readyz``.

The same walk shows that the PHI is really there for a radiologist (report and study header), so the greps
look at a study that carries it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient

from lungcad.log import configure_logging
from lungcad.service.app import create_app
from lungcad.service.context import open_context
from lungcad.service.db.session import transaction
from lungcad.service.models_registry import active_model
from lungcad.service.results import carries_phi
from lungcad.service.security import Role, create_key
from lungcad.service.settings import load_settings
from tests.service.helpers_analyses import add_study
from tests.service.helpers_phi import PHI_FIELDS, phi_copy, phi_in
from tests.service.helpers_routes import API, Fixture, api_routes
from tests.service.live import (
    Api,
    LiveProcess,
    create_admin_key,
    lungcad_cli,
    service_env,
    wait_api,
    wait_worker,
)
from tests.service.processes import free_port
from tests.service.uploads import STOW_TYPE, stow_body

NO_PHI_ROLES = ("viewer", "researcher")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.args!r}")


@contextlib.contextmanager
def captured_logs() -> Iterator[dict[str, object]]:
    """structlog as JSON at DEBUG into a buffer, and every Python logger at DEBUG into a handler."""
    buf, handler = io.StringIO(), _Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    configure_logging(json=True, level="DEBUG")
    out: dict[str, object] = {"structlog": buf, "logging": handler}
    try:
        with contextlib.redirect_stderr(buf):  # structlog writes to the current sys.stderr
            yield out
    finally:
        structlog.reset_defaults()
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The PHI study uploaded (form and STOW), analysed with the report by a researcher, a batch of it, and
    every route called with a viewer, a researcher and a radiologist key; responses and logs kept."""
    tmp = tmp_path_factory.mktemp("phi")
    files = [p.read_bytes() for p in phi_copy(tmp / "phi")]
    ctx = open_context(load_settings(tmp / "data", environ={}, queue_immediate=True))
    with transaction(ctx.sessions) as s:
        keys = {r.value: create_key(s, r).key for r in Role}
    responses: dict[str, list[tuple[str, httpx.Response]]] = {}
    try:
        with captured_logs() as logs, TestClient(create_app(ctx=ctx)) as client:

            def call(role: str, method: str, url: str, **kw) -> httpx.Response:
                headers = {**kw.pop("headers", {}), "X-API-Key": keys[role]}
                r = client.request(method, url, headers=headers, **kw)
                responses.setdefault(role, []).append((f"{method} {url}", r))
                return r

            up = call("radiologist", "POST", f"{API}/studies", files=[("files", ("a.dcm", d)) for d in files])
            assert up.status_code == 201, up.text
            stow = call(
                "service",
                "POST",
                f"{API}/dicomweb/studies",
                content=stow_body(files),
                headers={"Content-Type": STOW_TYPE},
            )
            assert stow.status_code == 200, stow.text
            study_id = up.json()["id"]
            made = call("researcher", "POST", f"{API}/analyses", json={"study_id": study_id, "report": True})
            assert made.status_code == 202, made.text
            aid = made.json()["id"]
            analysis = call("researcher", "GET", f"{API}/analyses/{aid}").json()
            assert analysis["status"] == "done", analysis
            batch = call(
                "researcher", "POST", f"{API}/batches", json={"study_ids": [study_id], "report": True}
            )
            assert batch.status_code == 202, batch.text
            names = [f["name"] for f in call("admin", "GET", f"{API}/analyses/{aid}/files").json()["files"]]
            with ctx.sessions() as s:
                sha = active_model(s).sha256
            fixture = Fixture(
                study_id=study_id,
                analysis_id=aid,
                batch_id=batch.json()["id"],
                config_hash=analysis["config_hash"],
                model_sha256=sha,
                dicom=files,
                fresh_study=lambda: add_study(ctx, patient_id="ANON-1", patient_name="Anon^Ymous"),
                fresh_key_prefix=lambda: "0" * 8,
            )
            routes = [r for r in api_routes(client.app) if r.path.startswith(API + "/")]
            for role in (*NO_PHI_ROLES, "radiologist"):
                for route, url, kw in fixture.requests(routes):
                    call(role, route.method, url, **kw)
                for name in names:  # every result file, by name
                    call(role, "GET", f"{API}/analyses/{aid}/files/{name}")
            probes = {p: client.get(p) for p in ("/metrics", "/readyz", "/healthz")}
        yield {
            "responses": responses,
            "names": names,
            "probes": probes,
            "structlog": logs["structlog"].getvalue(),  # type: ignore[union-attr]
            "logging": "\n".join(logs["logging"].lines),  # type: ignore[union-attr]
            "study_id": study_id,
        }
    finally:
        ctx.close()


@pytest.mark.parametrize("role", NO_PHI_ROLES)
def test_no_phi_in_any_response_to_a_role_without_phi_read(walk, role: str) -> None:
    got = walk["responses"][role]
    assert len(got) >= 25 + len(walk["names"])
    leaks = {label: phi_in(r.content) for label, r in got if phi_in(r.content)}
    assert not leaks, leaks
    # the role still read what it may: studies, the worklist, the result, de-identified files
    ok = {label for label, r in got if r.status_code == 200}
    assert f"GET {API}/studies/{walk['study_id']}" in ok
    assert any(label.endswith("/result") for label in ok) and f"GET {API}/worklist" in ok


@pytest.mark.parametrize("role", NO_PHI_ROLES)
def test_files_that_name_the_patient_are_refused_without_phi_read(walk, role: str) -> None:
    names = walk["names"]
    phi_files = [n for n in names if carries_phi(n)]
    assert {"report/report.pdf", "report/report.html", "dicom/seg.dcm", "dicom/sr.dcm"} <= set(phi_files)
    by_label = {label: r for label, r in walk["responses"][role]}
    for name in names:
        r = next(r for label, r in by_label.items() if label.endswith(f"/files/{name}"))
        if carries_phi(name):
            assert r.status_code == 403 and r.json()["error"] == "forbidden", (name, r.status_code)
        else:
            assert r.status_code == 200, (name, r.status_code, r.text[:200])
    listing = next(r for label, r in by_label.items() if label.endswith("/files"))
    assert {f["name"] for f in listing.json()["files"]} == {n for n in names if not carries_phi(n)}


def test_the_phi_is_there_for_a_radiologist(walk) -> None:
    """The greps above look at a study that carries PHI: a role with phi.read sees it."""
    got = dict(walk["responses"]["radiologist"])
    study = got[f"GET {API}/studies/{walk['study_id']}"].json()
    assert PHI_FIELDS["PatientID"] in json.dumps(study)
    report = next(r for label, r in got.items() if label.endswith("/files/report/report.html"))
    assert report.status_code == 200 and PHI_FIELDS["PatientName"] in phi_in(report.content)
    sr = next(r for label, r in got.items() if label.endswith("/files/dicom/sr.dcm"))
    assert PHI_FIELDS["PatientID"] in phi_in(sr.content)


def test_no_phi_in_logs_metrics_or_probes(walk) -> None:
    lines = [json.loads(line) for line in walk["structlog"].splitlines() if line.startswith("{")]
    # the capture saw the work: access lines of the requests and the detector's stages
    assert sum(1 for e in lines if e.get("event") == "request") >= 60
    assert any(e.get("event") == "stage" for e in lines)
    assert not phi_in(walk["structlog"]), phi_in(walk["structlog"])
    assert walk["logging"], "no Python logging record was captured"
    assert not phi_in(walk["logging"]), phi_in(walk["logging"])
    for path, r in walk["probes"].items():
        assert r.status_code == 200, (path, r.text[:300])
        assert not phi_in(r.content), (path, phi_in(r.content))
    assert "lungcad_http_request" in walk["probes"]["/metrics"].text


# -- real processes ----------------------------------------------------------------------------------------
DEBUG_JSON = ("--log-level", "DEBUG", "--log-json")


def _spawn_api_json(data_dir: Path, env: dict[str, str], log: Path) -> Api:
    port = free_port()
    argv = [*lungcad_cli(), *DEBUG_JSON, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    return Api(LiveProcess(f"api:{port}", [*argv, "--port", str(port)], env, log), port)


@pytest.mark.slow
def test_no_phi_in_the_output_of_serve_and_worker(tmp_path: Path) -> None:
    """``lungcad --log-json --log-level DEBUG serve`` and ``... worker``: upload (form and STOW), analyse
    with the report, read everything back; their stdout + stderr hold no PHI."""
    files = [p.read_bytes() for p in phi_copy(tmp_path / "phi")]
    data_dir = tmp_path / "data"
    env = service_env(data_dir)
    admin = create_admin_key(data_dir, env)  # migrates before either process starts
    started: list[LiveProcess] = []
    try:
        api = _spawn_api_json(data_dir, env, tmp_path / "api.log")
        started.append(api.proc)
        worker = LiveProcess(
            "worker",
            [*lungcad_cli(), *DEBUG_JSON, "worker", "--data-dir", str(data_dir)],
            env,
            tmp_path / "worker.log",
        )
        started.append(worker)
        wait_api(api)
        wait_worker(worker)
        with httpx.Client(base_url=api.url, timeout=120) as http:
            h = {"X-API-Key": admin}
            keys = {
                role: http.post(f"{API}/admin/keys", json={"role": role}, headers=h).json()["key"]
                for role in ("radiologist", "researcher", "viewer")
            }
            rad, res = {"X-API-Key": keys["radiologist"]}, {"X-API-Key": keys["researcher"]}
            up = http.post(
                f"{API}/studies", files=[("files", (f"{i}.dcm", d)) for i, d in enumerate(files)], headers=rad
            )
            assert up.status_code == 201, up.text
            stow = http.post(
                f"{API}/dicomweb/studies",
                content=stow_body(files),
                headers={**rad, "Content-Type": STOW_TYPE},
            )
            assert stow.status_code == 200, stow.text
            sid = up.json()["id"]
            aid = http.post(f"{API}/analyses", json={"study_id": sid, "report": True}, headers=res).json()[
                "id"
            ]
            deadline = time.monotonic() + 300
            while (state := http.get(f"{API}/analyses/{aid}", headers=res).json())["status"] in {
                "queued",
                "running",
            }:
                assert time.monotonic() < deadline, state
                time.sleep(1)
            assert state["status"] == "done", state
            for role_headers in (res, {"X-API-Key": keys["viewer"]}):
                for path in (
                    "studies",
                    f"studies/{sid}",
                    f"analyses/{aid}/result",
                    f"analyses/{aid}/files",
                    "worklist",
                    f"analyses/{aid}/files/candidates.csv",
                ):
                    r = http.get(f"{API}/{path}", headers=role_headers)
                    assert r.status_code == 200 and not phi_in(r.content), (path, r.status_code)
            pdf = http.get(f"{API}/analyses/{aid}/files/report/report.pdf", headers=rad)
            assert pdf.status_code == 200 and phi_in(pdf.content)  # the report does name the patient
            for path in ("/metrics", "/readyz"):
                r = http.get(path)
                assert r.status_code == 200 and not phi_in(r.content), path
    finally:
        for proc in started:
            proc.stop(timeout_s=20)  # SIGTERM: the processes flush and log their shutdown
    api_log, worker_log = api.proc.log(), worker.log()
    assert '"event": "request"' in api_log and "worker_started" in worker_log
    assert any(line.startswith("{") for line in worker_log.splitlines())
    assert not phi_in(api_log), phi_in(api_log)
    assert not phi_in(worker_log), phi_in(worker_log)
