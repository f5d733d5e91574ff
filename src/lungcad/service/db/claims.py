"""Outbox tables (webhook deliveries, result deliveries): claiming a due row for one send attempt, and the
thread that runs the send rounds.

Several senders (threads, worker processes, hosts) poll the same table.  A sender takes a row with one
conditional UPDATE: only while the row is still pending and due does it get a fresh claim token and its
``next_attempt_at`` pushed ``hold_s`` ahead, so a second sender's UPDATE matches no row and it moves on, and
a sender that dies mid-attempt leaves the row due again once the hold has passed.  Worked example: two
workers claim delivery 7 at 10:00:00 with hold 60 s: the first UPDATE sets next_attempt_at = 10:01:00 and
returns its token; the second finds ``next_attempt_at <= now`` false and gets None.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from lungcad.log import get_logger
from lungcad.service.db.session import transaction

log = get_logger("lungcad.service.db.claims")

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker


def claim_due(
    sessions: sessionmaker, table: Any, row_id: str, pending: Enum, now: datetime, hold_s: float
) -> str | None:
    """Take row ``row_id`` of ``table`` (a model with ``id``, ``status``, ``next_attempt_at`` and ``claim``
    columns) for one attempt: its new claim token, or None when another sender took it first or it is not
    pending and due."""
    token = uuid.uuid4().hex
    stmt = (
        update(table)
        .where(table.id == row_id, table.status == pending, table.next_attempt_at <= now)
        .values(claim=token, next_attempt_at=now + timedelta(seconds=hold_s))
        .execution_options(synchronize_session=False)
    )
    with transaction(sessions) as s:
        return token if s.execute(stmt).rowcount == 1 else None


def start_rounds(
    name: str,
    round_fn: Callable[[], object],
    stop: threading.Event,
    interval_s: float,
    failed_event: str,
    cleanup: Callable[[], object] | None = None,
) -> threading.Thread:
    """Call ``round_fn`` every ``interval_s`` seconds in a daemon thread ``name`` until ``stop`` is set, then
    ``cleanup``; a round that raises (the database is down) is logged as ``failed_event`` and the next round
    tries again."""

    def loop() -> None:
        try:
            while not stop.wait(interval_s):
                try:
                    round_fn()
                except Exception as exc:  # noqa: BLE001 - the database is down: try again next round
                    log.warning(failed_event, error_type=type(exc).__name__)
        finally:
            if cleanup is not None:
                cleanup()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
