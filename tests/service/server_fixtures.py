"""pytest fixtures for real PostgreSQL and Redis servers (see ``tests/service/servers.py``).

Use them from a conftest with ``from tests.service.server_fixtures import postgres_url, redis_url`` (or
``import *``), or from a test module with ``pytest_plugins = ["tests.service.server_fixtures"]``.

* ``postgres_url`` / ``redis_url`` (session): the URL of a server started for this test session and stopped
  (its process group killed) at the session's end, whether the tests passed or failed; tests that ask for
  it are skipped, with the reason, when the server cannot start.  ``LUNGCAD_TEST_POSTGRES_URL`` /
  ``LUNGCAD_TEST_REDIS_URL`` name an existing server instead (then nothing is started).
* ``postgres_db_url`` (function): an empty database of its own on ``postgres_url``'s server, dropped after
  the test, for tests that create tables or run migrations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.service.servers import ServerUnavailable, start_postgres, start_redis

__all__ = ["postgres_db_url", "postgres_url", "redis_url"]

POSTGRES_URL_ENV = "LUNGCAD_TEST_POSTGRES_URL"
REDIS_URL_ENV = "LUNGCAD_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL ``postgresql+psycopg://lungcad@127.0.0.1:<port>/lungcad`` (or the override's)."""
    if override := os.environ.get(POSTGRES_URL_ENV):
        yield override
        return
    try:
        server = start_postgres(tmp_path_factory.mktemp("postgres"))
    except ServerUnavailable as exc:
        pytest.skip(f"PostgreSQL server unavailable: {exc.reason}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` (or the override's)."""
    if override := os.environ.get(REDIS_URL_ENV):
        yield override
        return
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except ServerUnavailable as exc:
        pytest.skip(f"Redis server unavailable: {exc.reason}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """A fresh database ``lungcad_test_<hex>`` on the server, dropped (connections forced off) afterwards."""
    import sqlalchemy as sa

    name = f"lungcad_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
