"""Fixtures of the service tests: a fresh data folder, an opened context, a TestClient and keys per role.

The real PostgreSQL / Redis servers come from ``tests/service/server_fixtures.py`` (skipped with a reason
when they cannot start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.session import transaction
from lungcad.service.security import Role, create_key
from lungcad.service.settings import ServiceSettings, load_settings

try:  # the real-server fixtures (PostgreSQL, Redis)
    from tests.service.server_fixtures import postgres_db_url, postgres_url, redis_url  # noqa: F401
except ImportError:  # pragma: no cover - while the module is being written
    pass

REPO = Path(__file__).resolve().parents[2]
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    """Settings of a fresh data folder; the queue runs jobs in-process (``queue_immediate``)."""
    return load_settings(tmp_path / "data", environ={}, queue_immediate=True)


@pytest.fixture
def ctx(settings: ServiceSettings) -> Iterator[ServiceContext]:
    context = open_context(settings)
    yield context
    context.close()


@pytest.fixture
def client(ctx: ServiceContext) -> Iterator:
    from fastapi.testclient import TestClient

    from lungcad.service.app import create_app

    with TestClient(create_app(ctx=ctx)) as c:
        yield c


@pytest.fixture
def make_key(ctx: ServiceContext) -> Callable[[str], str]:
    """``make_key("viewer")`` -> a new key of that role."""

    def make(role: str = Role.ADMIN.value) -> str:
        with transaction(ctx.sessions) as s:
            return create_key(s, role).key

    return make


@pytest.fixture
def admin_headers(make_key: Callable[[str], str]) -> dict[str, str]:
    return {"X-API-Key": make_key("admin")}
