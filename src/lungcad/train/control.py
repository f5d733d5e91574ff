"""Pause / stop a running training from outside, at a step boundary, with a consistent checkpoint.

The control channel is a small JSON file in the run folder, ``control.json``:
``{"command": "pause" | "stop" | "run", "reason": "..."}``.  The service writes the same document (it keeps
its job table in the database and mirrors the command into the file of the job's run folder), and
``lungcad train-control RUN_DIR pause`` writes it from a shell.  The trainer reads it after every optimiser
step (a stat and, when the file changed, one small read), so a command takes effect within one step.

* ``pause``: save ``last.ckpt`` and exit with status "paused"; ``lungcad train --resume RUN_DIR`` continues.
* ``stop``: save ``last.ckpt`` and exit with status "stopped" (also resumable, but meant as final).

A command is consumed when a run starts or resumes (``consume_command``): the pause that ended a run does
not end its resumption at once. Ctrl-C in a terminal acts as a pause too (``ctrl_c_pauses``): the first one
finishes the current step, saves ``last.ckpt`` and ends with status "interrupted"; a second one aborts.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import FrameType

from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json

CONTROL_FILE = "control.json"


class Command(StrEnum):
    RUN = "run"
    PAUSE = "pause"
    STOP = "stop"


@dataclass
class ControlFile:
    """Reads the command for one run folder; cheap to poll (re-reads only when the file changes)."""

    run_dir: Path
    _mtime: float = -1.0
    _command: Command = Command.RUN

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / CONTROL_FILE

    def read(self) -> Command:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return Command.RUN
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._command = Command(json.loads(self.path.read_text()).get("command", "run"))
            except (ValueError, json.JSONDecodeError):  # half-written or bad: keep the last command
                pass
        return self._command


def write_command(run_dir: str | Path, command: str, reason: str = "") -> Path:
    """Write a control command atomically (the trainer never sees a half-written file)."""
    try:
        cmd = Command(command)
    except ValueError as exc:
        raise InputError(f"command must be one of {[c.value for c in Command]}, got {command!r}") from exc
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError("run folder does not exist", path=run, fix="pass the folder `lungcad train` created")
    path = run / CONTROL_FILE
    return atomic_write_json(path, {"command": cmd.value, "reason": reason}, indent=None)


def consume_command(run_dir: str | Path) -> Command | None:
    """Reset a pending "pause" / "stop" to "run" as a run (re)starts; return the command consumed, if any.

    Example: ``train-control RUN pause`` ends the run with "paused"; ``control.json`` still says "pause",
    so without this ``train --resume`` would pause again after its first step.
    """
    path = Path(run_dir) / CONTROL_FILE
    if not path.exists():
        return None
    command = ControlFile(Path(run_dir)).read()
    if command is Command.RUN:
        return None
    write_command(run_dir, Command.RUN.value, f"{command.value} consumed when the run (re)started")
    return command


@contextmanager
def ctrl_c_pauses(request_stop: Callable[[], None]) -> Iterator[None]:
    """While inside, a first Ctrl-C (SIGINT) calls ``request_stop`` instead of raising KeyboardInterrupt.

    The training then stops at the next step boundary with a consistent ``last.ckpt``; a second Ctrl-C
    raises KeyboardInterrupt as usual. Does nothing outside the main thread or where SIGINT is ignored
    (a background job), and restores the previous handler on exit (Lightning sets SIGINT to "ignore" after
    an interrupt it handled and never restores it).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield
        return
    pressed = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal pressed
        if pressed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        pressed = True
        request_stop()
        sys.stderr.write(
            "\nCtrl-C: stopping after this step and saving last.ckpt (press Ctrl-C again to abort)\n"
        )

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
