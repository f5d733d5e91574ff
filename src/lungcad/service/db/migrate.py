"""Apply the Alembic migrations: ``upgrade(url)`` brings any database to the newest schema.

Several processes may start at once (``serve`` and ``worker`` on one machine, or many workers): the
upgrade runs under a lock -- a PostgreSQL advisory lock, or an exclusive file lock beside a SQLite file --
so exactly one of them migrates and the others find the schema at head.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from lungcad.service.db.session import make_engine

ADVISORY_LOCK_ID = 0x6C756E67  # "lung"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("lungcad.service.db") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    url = make_url(str(engine.url))
    if url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_ID})
                conn.commit()
        return
    if url.database and url.database != ":memory:":
        lock = Path(url.database).with_suffix(".migrate.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    yield


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database at ``url`` to ``revision``; returns (revision before, revision after)."""
    engine = make_engine(url)
    try:
        with _migration_lock(engine):
            before = current_revision(engine)
            command.upgrade(alembic_config(url), revision)
            return before, current_revision(engine)
    finally:
        engine.dispose()
