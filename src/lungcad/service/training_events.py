"""The event log of a training job: ``D/runs/<job>/events.jsonl``, append-only, one JSON object a line::

    {"id": 7, "event": "state" | "step", "at": "2026-12-02T05:01:02.345+00:00", "data": {...}}

``id`` increases by one per event of the job, across restarts of the API and of the worker (the next id
is read from the file's last line under an exclusive ``flock``, so the API process and a session manager
may both append).  ``GET /training-jobs/{id}/events`` streams the file as Server-Sent Events; a client
that reconnects with ``Last-Event-ID: N`` gets the events after ``N`` and nothing twice.

* ``state``: the job changed state (``data``: state, message, attempts, step).
* ``step``: the training process reported a new step or status (``data``: the ``status.json`` snapshot).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from lungcad.service.db.session import utcnow

EVENTS_FILE = "events.jsonl"
_TAIL_BYTES = 1 << 16  # one event line is far shorter


def _last_id(fh: Any) -> int:
    """The id of the last complete line of the open events file (0 when empty)."""
    end = fh.seek(0, os.SEEK_END)
    if end == 0:
        return 0
    fh.seek(max(0, end - _TAIL_BYTES))
    lines = [ln for ln in fh.read().split(b"\n") if ln.strip()]
    for line in reversed(lines):
        try:
            return int(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):  # a torn last line (a crash mid-write): look further up
            continue
    return 0


def append_event(run_dir: Path, event: str, data: dict[str, Any]) -> int:
    """Append one event to the job's log and return its id."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / EVENTS_FILE, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            ident = _last_id(fh) + 1
            doc = {"id": ident, "event": event, "at": utcnow().isoformat(), "data": data}
            fh.write((json.dumps(doc, separators=(",", ":")) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return ident


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete event lines from byte ``offset`` on, and the offset after the last of them."""
    path = run_dir / EVENTS_FILE
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1  # a line being written (no newline yet) is read next time
    events = []
    for line in chunk[:end].split(b"\n"):
        if line.strip():
            try:
                events.append(json.loads(line))
            except ValueError:  # a torn line left by a crash: skipped, the ids stay increasing
                continue
    return events, offset + end


def sse(event: dict[str, Any]) -> str:
    """One event in the Server-Sent Events wire format."""
    return f"id: {event['id']}\nevent: {event['event']}\ndata: {json.dumps(event['data'])}\n\n"


KEEPALIVE_S = 15.0  # an SSE comment line this often keeps proxies from closing an idle stream


async def event_stream(
    run_dir: Path,
    after: int,
    finished: Callable[[], Awaitable[bool]],
    disconnected: Callable[[], Awaitable[bool]],
    poll_s: float = 0.5,
) -> AsyncIterator[str]:
    """The job's events with ids above ``after`` as SSE text, following the file as it grows.

    Ends when ``finished()`` (the job is in a final state) and every event up to then was sent, or when the
    client went away.  ``finished`` is asked before the file is read, so the event of the final state
    (appended before its state is committed) is always sent.
    """
    offset, idle = 0, 0.0
    while True:
        done = await finished()
        events, offset = read_events(run_dir, offset)
        for event in events:
            if int(event["id"]) > after:
                after = int(event["id"])
                yield sse(event)
                idle = 0.0
        if done or await disconnected():
            return
        await asyncio.sleep(poll_s)
        idle += poll_s
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
