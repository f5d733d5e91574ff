"""Pause / stop a running training from outside, at a step boundary, with a consistent checkpoint.

The control channel is a small JSON file in the run folder, ``control.json``:
``{"command": "pause" | "stop" | "run", "reason": "..."}``.  The service writes the same document (it keeps
its job table in the database and mirrors the command into the file of the job's run folder), and
``lungcad train-control RUN_DIR pause`` writes it from a shell.  The trainer reads it after every optimiser
step (a stat and, when the file changed, one small read), so a command takes effect within one step.

* ``pause``: save ``last.ckpt`` and exit with status "paused"; ``lungcad train --resume RUN_DIR`` continues.
* ``stop``: save ``last.ckpt`` and exit with status "stopped" (also resumable, but meant as final).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lungcad.errors import InputError

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
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"command": cmd.value, "reason": reason}))
    os.replace(tmp, path)
    return path
