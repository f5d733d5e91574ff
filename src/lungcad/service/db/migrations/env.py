"""Alembic environment of the service database.

Run through ``lungcad admin migrate`` (``lungcad.service.db.migrate.upgrade``), which passes the URL and,
when the caller already holds one, the connection; there is no alembic.ini to keep in step.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from lungcad.service.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    # render_as_batch: SQLite cannot ALTER most things, so column changes are written as copy-and-move
    context.configure(target_metadata=target_metadata, render_as_batch=True, compare_type=True, **kwargs)


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
