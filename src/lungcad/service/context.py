"""``ServiceContext``: what the API process and a worker share -- settings, database, storage, queue.

Built once per process by :func:`open_context` (never at import time): it creates the data folder,
migrates the database to the newest schema (under a lock, so ``serve`` and ``worker`` may start together)
and makes sure a model is registered and active (the shipped one, or ``settings.model_path``, on a fresh
data folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lungcad.config import LungcadConfig, load_config
from lungcad.service.db.migrate import upgrade
from lungcad.service.db.session import make_engine, make_sessionmaker
from lungcad.service.security import KeyVerifier
from lungcad.service.settings import ServiceSettings
from lungcad.service.storage import Storage

if TYPE_CHECKING:
    from huey import Huey


@dataclass
class ServiceContext:
    settings: ServiceSettings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage
    config: LungcadConfig
    keys: KeyVerifier = field(default_factory=KeyVerifier)
    _queue: Huey | None = None

    @property
    def queue(self) -> Huey:
        """The Huey instance (built on first use: the API only enqueues, a worker also consumes)."""
        if self._queue is None:
            from lungcad.service.jobs.queue import make_queue

            self._queue = make_queue(self)
        return self._queue

    def close(self) -> None:
        self.engine.dispose()


def open_context(
    settings: ServiceSettings, *, config: LungcadConfig | None = None, migrate: bool = True
) -> ServiceContext:
    """Open (and on first use create) the service's data folder and database."""
    storage = Storage(settings.data_dir).ensure()
    if migrate:
        upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    ctx = ServiceContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        storage=storage,
        config=config or load_config(),
    )
    from lungcad.service.models_registry import ensure_active_model

    ensure_active_model(ctx)
    return ctx
