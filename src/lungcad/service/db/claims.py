"""Claiming a due row of an outbox table (webhook deliveries, result deliveries) for one send attempt.

Several senders (threads, worker processes, hosts) poll the same table.  A sender takes a row with one
conditional UPDATE: only while the row is still pending and due does it get a fresh claim token and its
``next_attempt_at`` pushed ``hold_s`` ahead, so a second sender's UPDATE matches no row and it moves on, and
a sender that dies mid-attempt leaves the row due again once the hold has passed.  Worked example: two
workers claim delivery 7 at 10:00:00 with hold 60 s: the first UPDATE sets next_attempt_at = 10:01:00 and
returns its token; the second finds ``next_attempt_at <= now`` false and gets None.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from lungcad.service.db.session import transaction

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
