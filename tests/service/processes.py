"""Server processes for tests that never outlive them: spawn, wait until ready, stop the whole tree.

A server runs in a session of its own; ``ServerProcess.stop()`` signals it politely, SIGKILLs it after a
timeout, then SIGKILLs any descendant still running (PostgreSQL's children call ``setsid()``, so killing
the postmaster's process group would miss them; they are found by parent id in /proc before the stop).
``stop()`` is registered with ``atexit`` by the starters, and where util-linux's ``setpriv`` exists each
server also gets ``PR_SET_PDEATHSIG=SIGKILL``, so that a pytest killed outright takes its servers along
(PostgreSQL's children leave on their own when the postmaster dies).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_S = TypeVar("_S")
_BIND_ERRORS = ("could not bind", "Address already in use", "could not create listen socket")


class ServerUnavailable(Exception):
    """The server's binary is missing or the server did not start; ``reason`` says which and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _proc_table() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, start time in clock ticks since boot), from /proc/<pid>/stat."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        fields = line[line.rfind(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ..., starttime
        table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[19]))
    return table


def process_tree(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of ``pid`` and its running descendants; the start time tells a reused pid apart."""
    table = _proc_table()
    tree, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        if p in table and table[p][0] != "Z":
            tree.append((p, table[p][2]))
            frontier += [child for child, (_, ppid, _) in table.items() if ppid == p]
    return tree


def still_running(processes: list[tuple[int, int]]) -> list[int]:
    """The pids of ``processes`` (from ``process_tree``) still running; zombies count as gone (in a
    container nobody may reap a server whose parent died)."""
    table = _proc_table()
    return [p for p, start in processes if p in table and table[p][0] != "Z" and table[p][2] == start]


def tail(log_path: Path, n_chars: int = 2000) -> str:
    """The last ``n_chars`` characters of a server log, for a ServerUnavailable reason."""
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-n_chars:]
    except OSError:
        return ""


def remove(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class ServerProcess:
    """A server process, its log file and the folders removed once it is gone."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int
    cleanup: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Send ``stop_signal``, wait up to ``timeout_s`` seconds, SIGKILL the server and whatever it forked
        that still runs; then remove ``cleanup``.  Idempotent."""
        atexit.unregister(self.stop)
        tree = process_tree(self.pid) if self.alive() else []
        if self.alive():
            _kill(self.pid, self.stop_signal)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout_s)
        for pid in still_running(tree):
            _kill(pid, signal.SIGKILL)
        remove(self.cleanup)
        self.cleanup.clear()


def spawn(
    argv: list[str], log_path: Path, account: pwd.struct_passwd | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log_path``, as ``account`` (None: as
    we are), with the parent-death signal where ``setpriv`` exists."""
    setpriv = shutil.which("setpriv")
    if setpriv:  # exec'd after Popen's uid change, so the kernel keeps the signal (a uid change clears it)
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGDATA / PGPORT
    user_args: dict[str, object] = {}
    if account is not None:
        user_args = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        env["HOME"] = account.pw_dir
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            **user_args,  # type: ignore[arg-type]
        )


def wait_until(ready: Callable[[], bool], process: ServerProcess, timeout_s: float, what: str) -> None:
    """Poll ``ready()`` every 50 ms; stop the process and raise ServerUnavailable (with the log's end) if it
    exits or ``timeout_s`` seconds pass."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive():
            process.stop()  # anything it forked
            raise ServerUnavailable(
                f"{what} exited with code {process.popen.returncode}:\n{tail(process.log_path)}"
            )
        if ready():
            return
        time.sleep(0.05)
    process.stop()
    raise ServerUnavailable(
        f"{what} did not accept connections within {timeout_s:.0f} s:\n{tail(process.log_path)}"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_free_port(start_once: Callable[[int], _S], what: str, attempts: int = 3) -> _S:
    """``start_once(free_port())``, again with a new port when the server could not bind (another process
    can take the port between ``free_port()`` and the server's bind)."""
    last = ""
    for _ in range(attempts):
        try:
            return start_once(free_port())
        except ServerUnavailable as exc:
            if not any(marker in exc.reason for marker in _BIND_ERRORS):
                raise
            last = exc.reason
    raise ServerUnavailable(f"{what}: no free port after {attempts} tries; last error: {last}")
