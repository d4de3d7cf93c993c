"""Rate limits: a token bucket per caller (a hospital app, a signed-in person, an anonymous address).

Buckets live in the serving process: cheap enough to check on every request, and with N worker
processes a caller gets at most N times the limit, which is what a per-worker limit is meant to cap
(a runaway integration or a scripted sign-in), not a precise quota. The limit and the burst are
settings; 0 turns a limit off (benchmarks do that to measure the request path alone).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .errors import TooManyRequests

MAX_BUCKETS = 100_000  # forget idle callers beyond this, so memory stays bounded


class RateLimited(TooManyRequests):
    """The caller's request allowance is spent."""


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        # A caller may spend a quarter of a minute's allowance at once (a burst), then the steady rate.
        self._capacity = max(1.0, per_minute / 4)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str, *, now: float | None = None) -> None:
        """Spend one token for ``key`` or raise ``RateLimited`` saying when to retry."""
        if self.per_minute <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._buckets.clear()
                bucket = self._buckets[key] = _Bucket(self._capacity, now)
            bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return
            retry_after = max(1, int((1 - bucket.tokens) / self._rate + 0.999))
        raise RateLimited(
            f"Too many requests; at most {self.per_minute} a minute. Retry in {retry_after} s.",
            retry_after=retry_after,
        )
