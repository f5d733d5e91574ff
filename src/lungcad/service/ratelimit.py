"""Rate limiting per API key: an in-process token bucket per key.

Each key gets ``rate_per_minute`` tokens of burst, refilled continuously at ``rate_per_minute / 60`` per
second; a request takes one token, and a request that finds the bucket empty is refused with 429 and a
``Retry-After`` (seconds until a token is back).  The buckets live in the API process: with several API
replicas each enforces the limit on its own (the limit per key is then up to replicas x rate); that is
the price of needing no shared store for it.  The probes (``/healthz``, ``/readyz``, ``/metrics``) take no
key and are never limited.
"""

from __future__ import annotations

import threading
import time

MAX_KEYS = 100_000  # buckets kept before the full ones are dropped (a full bucket is the default state)


class RateLimiter:
    """``take(key_id)`` -> 0.0 when the request may go on, else the seconds to wait."""

    def __init__(self, rate_per_minute: int, *, clock: object = time.monotonic) -> None:
        self.capacity = float(rate_per_minute)
        self.per_s = rate_per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def take(self, key_id: str) -> float:
        if not self.enabled:
            return 0.0
        now = self._clock()  # type: ignore[operator]
        with self._lock:
            tokens, at = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.per_s)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            if len(self._buckets) > MAX_KEYS:
                self._prune(now)
            return (1.0 - tokens) / self.per_s

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.per_s
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
