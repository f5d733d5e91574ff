"""Worker subprocesses for tests: ``python -m lungcad.service.jobs.worker --data-dir D`` with ``LUNGCAD_*``
settings in its environment, JSON logs in a file, always killed at the end of the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class Worker:
    """One worker process; ``events()`` reads back its JSON log lines."""

    def __init__(self, data_dir: Path, env: Mapping[str, str], log_path: Path, threads: int = 1) -> None:
        self.log_path = log_path
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LUNGCAD_")}
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lungcad.service.jobs.worker", "--data-dir", str(data_dir), "--log-json"]
            + ["--threads", str(threads)],
            cwd=REPO,
            env={**clean, **env, "OMP_NUM_THREADS": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # huey's own (stdlib) lines
            if isinstance(doc, dict) and (name is None or doc.get("event") == name):
                out.append(doc)
        return out

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, no clean-up of any kind."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM (graceful), then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return int(self.proc.returncode)


@contextmanager
def workers(data_dir: Path, env: Mapping[str, str], log_dir: Path, n: int = 1) -> Iterator[list[Worker]]:
    """``n`` workers, SIGKILLed at the end whatever happened (a test stops them politely itself)."""
    started: list[Worker] = []
    try:
        for i in range(n):
            started.append(Worker(data_dir, env, log_dir / f"worker-{i}.log"))
        yield started
    finally:
        for w in started:
            w.kill()
            w._log.close()


def wait_for(what: str, fn: Callable[[], T | None], timeout_s: float, procs: list[Worker] = ()) -> T:  # type: ignore[assignment]
    """Poll ``fn`` every 50 ms until it returns something truthy; fails (with the workers' log tails)
    after ``timeout_s`` or when a worker exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        dead = [w for w in procs if w.proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(w.log_path.read_text(errors="replace")[-3000:] for w in procs)
            reason = "a worker exited" if dead else f"not within {timeout_s} s"
            raise AssertionError(f"waiting for {what}: {reason}\n{tails}")
        time.sleep(0.05)
