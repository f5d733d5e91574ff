"""Training as a service over real HTTP with real processes (issue 14's acceptance): ``lungcad serve`` and
``lungcad worker`` on loopback; the job's events followed live as Server-Sent Events; the API restarted
and the worker killed with SIGKILL while the job trains; a new worker re-attaches the training process,
which ends the job once (never spawned twice)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.service.live import live_services, service_env, spawn_worker, wait_worker
from tests.service.test_training_jobs import WAIT_S, tiny_job_config
from tests.train.conftest import write_tiny_cohort


def _wait(c: httpx.Client, job: str, ok, what: str) -> dict:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        doc = c.get(f"/api/v1/training-jobs/{job}").json()
        if ok(doc):
            return doc
        assert doc["state"] != "failed", doc["message"]
        time.sleep(0.5)
    raise AssertionError(
        f"job {job} did not get {what}: {doc}\n" + c.get(f"/api/v1/training-jobs/{job}/logs").text
    )


def _live_events(c: httpx.Client, job: str, until_step: int) -> list[dict]:
    """Read the event stream as it is written, until a ``step`` event reaches ``until_step``."""
    events, block = [], {}
    with c.stream("GET", f"/api/v1/training-jobs/{job}/events", timeout=WAIT_S) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line:
                if not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    block[key] = value
                continue
            if block:
                events.append(
                    {"id": int(block["id"]), "event": block["event"], "data": json.loads(block["data"])}
                )
                block = {}
                if events[-1]["event"] == "step" and events[-1]["data"]["step"] >= until_step:
                    return events
    raise AssertionError(f"the stream ended before step {until_step}: {events}")


@pytest.mark.slow
def test_restart_the_api_and_kill_9_the_worker_while_a_job_trains(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_tiny_cohort(data / "cohorts" / "tiny")  # under D/cohorts: always an allowed root
    env = service_env(data)
    trainers: list[int] = []
    try:
        with live_services(data, tmp_path / "logs", env) as svc:
            c = httpx.Client(base_url=svc.url, headers=svc.headers, timeout=60)
            r = c.post("/api/v1/cohorts", json={"path": str(data / "cohorts" / "tiny")})
            assert r.status_code == 201, r.text
            body = {"config": tiny_job_config(epochs=3), "data": [r.json()["id"]]}  # 12 steps
            job = c.post("/api/v1/training-jobs", json=body).json()["id"]

            live = _live_events(c, job, until_step=1)
            assert [e["data"]["state"] for e in live if e["event"] == "state"] == [
                "queued",
                "starting",
                "running",
            ]
            assert [e["id"] for e in live] == list(range(1, len(live) + 1))

            svc.restart_api()  # the job does not notice
            doc = _wait(c, job, lambda d: (d["progress"] or {}).get("step", 0) >= 5, "step 5")
            trainers.append(doc["pid"])
            assert svc.worker is not None
            svc.worker.kill()  # SIGKILL of the worker's whole process group
            assert psutil.pid_exists(doc["pid"]), "the training process runs in a session of its own"
            assert c.get(f"/api/v1/training-jobs/{job}").json()["state"] == "running"

            worker = spawn_worker(data, env, tmp_path / "logs" / "worker-2.log")
            svc.started.append(worker)
            wait_worker(worker)
            done = _wait(c, job, lambda d: d["state"] == "finished", "finished")
            assert done["progress"]["step"] == 12 and done["attempts"] == 1 and done["pid"] == doc["pid"]
            # the re-attached process was judged from its status.json: exit code unknown (not our child)
            assert done["exit_code"] is None

            later = []
            with c.stream(
                "GET", f"/api/v1/training-jobs/{job}/events", headers={"Last-Event-ID": str(live[-1]["id"])}
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        later.append(int(line[4:]))
            assert later and later[0] == live[-1]["id"] + 1 and later == sorted(later)
    finally:
        for pid in trainers:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
