"""Real service processes for end-to-end tests: ``lungcad serve`` and ``lungcad worker`` on loopback.

Each process runs in a session of its own with its output in a log file; ``LiveProcess.kill()`` SIGKILLs
its whole process group (uvicorn, Huey threads, torch's helpers), and ``live_services()`` kills everything
it started however the test ends.  Settings reach the processes as ``LUNGCAD_*`` variables (the
environment of pytest's own ``LUNGCAD_*`` is dropped first, so a developer's shell cannot leak in).

Where the ``lungcad`` CLI lacks ``serve`` / ``worker`` (an older checkout), the same processes are started
as ``python -m uvicorn --factory tests.service.live:app_from_env`` and
``python -m lungcad.service.jobs.worker``.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.service.processes import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0  # a cold start imports torch and loads (and warms) the model on a busy 2-core box
LOG_FLAGS = ("--log-level", "INFO", "--log-json")  # the CLI's global options: JSON lines, worker_started
_BIND_ERRORS = ("address already in use", "error while attempting to bind")


def lungcad_cli() -> list[str]:
    """The ``lungcad`` entry point of this interpreter's environment (``.venv/bin/lungcad``)."""
    script = Path(sys.executable).parent / "lungcad"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from lungcad.cli import main; sys.exit(main())"]


@functools.cache
def has_command(*words: str) -> bool:
    """``lungcad <words> --help`` works (the command exists in this checkout)."""
    run = subprocess.run([*lungcad_cli(), *words, "--help"], capture_output=True, timeout=120, cwd=REPO)
    return run.returncode == 0


def app_from_env():  # noqa: ANN201 - a FastAPI app, for ``uvicorn --factory``
    """The API app from ``LUNGCAD_*`` variables (the fallback of ``lungcad serve``)."""
    from lungcad.service.app import create_app
    from lungcad.service.settings import load_settings

    return create_app(load_settings())


def service_env(
    data_dir: Path, *, database_url: str = "", queue_url: str = "", **extra: str
) -> dict[str, str]:
    """The environment of a service process: this one's without ``LUNGCAD_*``, plus the settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNGCAD_")}
    env["LUNGCAD_DATA_DIR"] = str(data_dir)
    if database_url:
        env["LUNGCAD_DATABASE_URL"] = database_url
    if queue_url:
        env["LUNGCAD_QUEUE_URL"] = queue_url
    env.update({f"LUNGCAD_{k.upper()}": v for k, v in extra.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LiveProcess:
    """One process in its own session (process group), its stdout + stderr in ``log_path``."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name, self.argv, self.log_path = name, argv, log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, n_chars: int = 3000) -> str:
        return self.log()[-n_chars:]

    def kill(self) -> None:
        """SIGKILL the process group: no clean-up of any kind (also the teardown of every test)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(30)
        finally:
            self._log.close()

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM (graceful), SIGKILL after ``timeout_s``; the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        code = self.proc.poll()
        self.kill()
        return code


class StartFailed(RuntimeError):
    pass


def _wait(proc: LiveProcess, ready, what: str, timeout_s: float) -> None:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartFailed(f"{what} exited with {proc.proc.returncode} while starting:\n{proc.tail()}")
        if ready():
            return
        time.sleep(0.2)
    raise StartFailed(f"{what} not ready after {timeout_s:.0f} s:\n{proc.tail()}")


@dataclass
class Api:
    proc: LiveProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def spawn_api(data_dir: Path, env: Mapping[str, str], log_path: Path, port: int | None = None) -> Api:
    """Start ``lungcad serve --data-dir D --port P`` (the uvicorn factory where ``serve`` is missing)."""
    port = port or free_port()
    if has_command("serve"):
        argv = [
            *lungcad_cli(),
            *LOG_FLAGS,
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        argv += _url_flags(env)
    else:
        argv = [sys.executable, "-m", "uvicorn", "--factory", "tests.service.live:app_from_env"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    return Api(LiveProcess(f"api:{port}", argv, env, log_path), port)


def wait_api(api: Api, timeout_s: float = START_TIMEOUT_S) -> Api:
    _wait(api.proc, lambda: _answers(api.url), f"lungcad serve (port {api.port})", timeout_s)
    return api


def spawn_worker(data_dir: Path, env: Mapping[str, str], log_path: Path) -> LiveProcess:
    """Start ``lungcad worker --data-dir D`` (the worker module where the command is missing)."""
    if has_command("worker"):
        argv = [*lungcad_cli(), *LOG_FLAGS, "worker", "--data-dir", str(data_dir), *_url_flags(env)]
    else:
        argv = [
            sys.executable,
            "-m",
            "lungcad.service.jobs.worker",
            "--data-dir",
            str(data_dir),
            "--log-json",
        ]
    return LiveProcess("worker", argv, env, log_path)


def wait_worker(worker: LiveProcess, timeout_s: float = START_TIMEOUT_S) -> LiveProcess:
    """Ready once it logged ``worker_started`` (model loaded and warmed, consumer running)."""
    _wait(worker, lambda: "worker_started" in worker.log(), "lungcad worker", timeout_s)
    return worker


def _url_flags(env: Mapping[str, str]) -> list[str]:
    """The URLs as flags as well as variables: the CLI path the issue documents."""
    out = []
    if url := env.get("LUNGCAD_DATABASE_URL"):
        out += ["--database-url", url]
    if url := env.get("LUNGCAD_QUEUE_URL"):
        out += ["--queue-url", url]
    return out


def create_admin_key(data_dir: Path, env: Mapping[str, str]) -> str:
    """``lungcad admin create-key --role admin --data-dir D``: the key (its only output on stdout)."""
    if has_command("admin", "create-key"):
        argv = [*lungcad_cli(), "admin", "create-key", "--role", "admin", "--data-dir", str(data_dir)]
        if url := env.get("LUNGCAD_DATABASE_URL"):
            argv += ["--database-url", url]
        run = subprocess.run(argv, cwd=REPO, env=dict(env), capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise StartFailed(f"create-key failed ({run.returncode}): {run.stderr[-2000:]}")
        return run.stdout.strip()
    from lungcad.service.context import open_context  # the same database, in-process
    from lungcad.service.db.session import transaction
    from lungcad.service.security import create_key
    from lungcad.service.settings import load_settings

    ctx = open_context(load_settings(data_dir, environ=env))
    try:
        with transaction(ctx.sessions) as s:
            return create_key(s, "admin").key
    finally:
        ctx.close()


@dataclass
class Services:
    """What ``live_services`` started; ``restart_api`` replaces the API on the same port."""

    data_dir: Path
    env: dict[str, str]
    log_dir: Path
    api: Api
    worker: LiveProcess | None
    key: str
    started: list[LiveProcess] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def restart_api(self) -> Api:
        t0 = time.perf_counter()
        self.api.proc.kill()
        n = sum(1 for p in self.started if p.name.startswith("api"))
        self.api = spawn_api(self.data_dir, self.env, self.log_dir / f"api-{n}.log", port=self.api.port)
        self.started.append(self.api.proc)
        wait_api(self.api)
        self.timings[f"api restart {n}"] = time.perf_counter() - t0
        return self.api


@contextmanager
def live_services(
    data_dir: Path, log_dir: Path, env: Mapping[str, str], *, worker: bool = True
) -> Iterator[Services]:
    """An API (and a worker) on ``data_dir``, killed (SIGKILL, whole process group) at the end whatever
    happened.  The database is created and the admin key made before either starts (the key command
    migrates), so the two never race for the first migration."""
    env = dict(env)
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[LiveProcess] = []
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        key = create_admin_key(data_dir, env)
        timings["create-key"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        api, proc = None, None
        for attempt in range(3):  # another process can take the port between free_port() and the bind
            api = spawn_api(data_dir, env, log_dir / f"api-{attempt}.log")
            started.append(api.proc)
            if attempt == 0 and worker:
                proc = spawn_worker(data_dir, env, log_dir / "worker.log")
                started.append(proc)
            try:
                wait_api(api)
                break
            except StartFailed as exc:
                if attempt == 2 or not any(e in str(exc).lower() for e in _BIND_ERRORS):
                    raise
        timings["api start"] = time.perf_counter() - t0
        if proc is not None:
            wait_worker(proc)
            timings["worker start (model warm)"] = time.perf_counter() - t0
        assert api is not None
        yield Services(data_dir, env, log_dir, api, proc, key, started, timings)
    finally:
        for p in started:
            p.kill()
