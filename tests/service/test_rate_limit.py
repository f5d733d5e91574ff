"""Rate limiting per API key: a token bucket (burst = the per-minute rate, refilled evenly); beyond it 429
with ``Retry-After`` and the JSON error body; other keys and the probes are not affected; 0 turns it off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lungcad.service.app import create_app
from lungcad.service.context import open_context
from lungcad.service.db.session import transaction
from lungcad.service.ratelimit import RateLimiter
from lungcad.service.security import Role, create_key
from lungcad.service.settings import load_settings

API = "/api/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_evenly() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)  # one a second, burst 60
    assert all(limiter.take("k") == 0.0 for _ in range(60))
    wait = limiter.take("k")
    assert wait == pytest.approx(1.0)
    assert limiter.take("other") == 0.0  # per key
    clock.now += 0.5
    assert limiter.take("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("k") == 0.0 and limiter.take("k") > 0
    clock.now += 3600  # refilled to the burst, not beyond it
    assert sum(limiter.take("k") == 0.0 for _ in range(100)) == 60
    off = RateLimiter(0, clock=clock)
    assert not off.enabled and all(off.take("k") == 0.0 for _ in range(1000))


def _client(tmp_path, rate: int) -> Iterator[tuple[TestClient, list[str]]]:
    ctx = open_context(
        load_settings(tmp_path / "d", environ={}, queue_immediate=True, rate_limit_per_minute=rate)
    )
    with transaction(ctx.sessions) as s:
        keys = [create_key(s, Role.VIEWER).key, create_key(s, Role.VIEWER).key]
    try:
        with TestClient(create_app(ctx=ctx)) as c:
            yield c, keys
    finally:
        ctx.close()


@pytest.fixture
def limited(tmp_path) -> Iterator[tuple[TestClient, list[str]]]:
    yield from _client(tmp_path, 3)


def test_beyond_the_rate_a_key_gets_429_with_retry_after(limited) -> None:
    client, (key, other) = limited
    codes = [client.get(f"{API}/worklist", headers={"X-API-Key": key}).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = client.get(f"{API}/worklist", headers={"X-API-Key": key})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 20  # 3 a minute: a token every 20 s
    body = r.json()
    assert body["error"] == "rate_limited" and "3 requests a minute" in body["message"] and body["fix"]
    # a refused request of another route counts against the same key; another key is not affected
    assert client.get(f"{API}/studies", headers={"X-API-Key": key}).status_code == 429
    assert client.get(f"{API}/worklist", headers={"X-API-Key": other}).status_code == 200
    # the probes take no key and are never limited
    for _ in range(10):
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)


def test_zero_turns_the_limit_off(tmp_path) -> None:
    for client, (key, _other) in _client(tmp_path, 0):
        codes = {client.get(f"{API}/worklist", headers={"X-API-Key": key}).status_code for _ in range(30)}
        assert codes == {200}
