"""``lungcad serve | worker | admin create-key | admin migrate``: options, output, exit codes, and the real
``serve`` and ``worker`` processes started, answering and stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lungcad.cli import build_app, main
from lungcad.service.db.migrate import current_revision, head_revision
from lungcad.service.db.session import make_engine, make_sessionmaker
from lungcad.service.security import KeyVerifier, Role
from lungcad.service.settings import load_settings
from tests.service.processes import free_port

ENV_KEYS = ("LUNGCAD_DATA_DIR", "LUNGCAD_DATABASE_URL", "LUNGCAD_QUEUE_URL", "LUNGCAD_QUEUE_IMMEDIATE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


def _lungcad() -> list[str]:
    """The installed ``lungcad`` entry point of this interpreter's environment."""
    script = Path(sys.executable).parent / "lungcad"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from lungcad.cli import main; sys.exit(main())"]


def _verify(data_dir: Path, key: str):
    engine = make_engine(load_settings(data_dir, environ={}).db_url)
    try:
        with make_sessionmaker(engine)() as s:
            return KeyVerifier().verify(s, key)
    finally:
        engine.dispose()


def test_create_key_prints_a_working_key_once(tmp_path: Path) -> None:
    data = tmp_path / "d"
    result = CliRunner().invoke(
        build_app(), ["admin", "create-key", "--role", "viewer", "--data-dir", str(data)]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("lc_") and len(key.splitlines()) == 1  # stdout holds the key alone
    principal = _verify(data, key)
    assert principal is not None and principal.role is Role.VIEWER
    assert "not shown again" in result.stderr and principal.prefix in result.stderr


def test_create_key_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    argv = ["admin", "create-key", "--role", "Radiologist", "--name", "reading room 2"]
    assert main([*argv, "--expires-days", "7", "--data-dir", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["role"] == "radiologist" and out["name"] == "reading room 2"
    assert out["key"].startswith(f"lc_{out['prefix']}_") and out["expires_at"] > out["created_at"]
    assert _verify(data, out["key"]).prefix == out["prefix"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["admin", "create-key", "--role", "boss", "--data-dir", "{d}"], "unknown role 'boss'"),
        (
            ["admin", "create-key", "--role", "viewer", "--data-dir", "{d}", "--expires-days", "0"],
            "expires_days",
        ),
        (["admin", "create-key", "--role", "viewer"], "--data-dir"),
        (["admin", "migrate"], "LUNGCAD_DATA_DIR"),
        (["serve", "--data-dir", "{d}", "--port", "70000"], "port"),
        (["worker", "--data-dir", "{d}", "--threads", "0"], "worker_threads"),
    ],
)
def test_bad_options_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    data = tmp_path / "d"
    assert main([a.replace("{d}", str(data)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Fix:" in err and "Traceback" not in err
    assert not (data / "lungcad.db").exists()  # refused before touching anything


def test_worker_refuses_an_immediate_mode_queue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUNGCAD_QUEUE_IMMEDIATE", "true")
    assert main(["worker", "--data-dir", str(tmp_path / "d")]) == 2
    assert "immediate-mode queue" in capsys.readouterr().err


def test_migrate_reports_before_and_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    assert main(["admin", "migrate", "--data-dir", str(data)]) == 0
    assert f"empty -> {head_revision()} (migrated)" in capsys.readouterr().out
    assert main(["admin", "migrate", "--data-dir", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["before"] == out["after"] == head_revision() and out["database"].endswith("lungcad.db")
    engine = make_engine(f"sqlite:///{data / 'lungcad.db'}")
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_migrate_hides_the_database_password(postgres_db_url: str, tmp_path: Path, capsys) -> None:
    import sqlalchemy as sa

    url = sa.make_url(postgres_db_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    # the test server trusts local connections, so any password gets in; the point is what is printed
    assert main(["admin", "migrate", "--data-dir", str(tmp_path / "d"), "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "***" in out and f"-> {head_revision()}" in out


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    with open(log, "wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM, and the exit code; SIGKILL (and a failure) if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        pytest.fail(f"pid {proc.pid} ignored SIGTERM for {timeout_s} s")


def _wait_for(ready, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.1)
    pytest.fail(f"not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


def test_serve_as_a_process_answers_with_a_cli_key_and_stops_on_sigterm(tmp_path: Path) -> None:
    data, log, port = tmp_path / "d", tmp_path / "serve.log", free_port()
    made = subprocess.run(
        [*_lungcad(), "admin", "create-key", "--role", "researcher", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    proc = _spawn([*_lungcad(), "serve", "--data-dir", str(data), "--port", str(port)], log)
    try:
        _wait_for(healthy, proc, log)
        r = httpx.get(f"{base}/api/v1/models", headers={"X-API-Key": key}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 1 and r.json()["items"][0]["active"] is True
        assert httpx.get(f"{base}/api/v1/models", timeout=10).status_code == 401
    finally:
        code = _stop(proc)
    text = log.read_text()
    # a graceful stop: uvicorn re-raises the SIGTERM it handled, after the app's shutdown completed
    assert code in (0, -signal.SIGTERM), text[-3000:]
    assert "Application shutdown complete" in text and "Traceback" not in text
    assert f"lungcad API on {base}/api/v1" in text


def test_worker_as_a_process_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    data, log = tmp_path / "d", tmp_path / "worker.log"
    argv = [*_lungcad(), "--log-level", "INFO", "--log-json", "worker", "--data-dir", str(data)]
    proc = _spawn([*argv, "--threads", "2"], log)
    try:
        _wait_for(lambda: "worker_started" in log.read_text(), proc, log)
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    started = next(e for e in events if e.get("event") == "worker_started")
    assert started["threads"] == 2
    assert any(e.get("event") == "worker_stopped" for e in events)
