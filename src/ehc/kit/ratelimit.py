"""Rate limits: a token bucket per caller (a hospital app, a signed-in person, an anonymous address).

A caller may spend a quarter of a minute's allowance at once (a burst), then the steady rate. Two
stores, one behaviour:

- :class:`SharedRateLimiter`, with ``EHC_REDIS_URL``: one bucket per caller for every worker process
  and host, kept in Redis as its "theoretical arrival time" (GCRA, the token bucket's equivalent in
  one number), checked and spent by one Lua script, so racing workers cannot both take the last
  token. Redis's clock decides, so the hosts' clocks need not agree. If Redis stops answering, the
  request goes through and the failure is logged: a limit caps a runaway integration or a scripted
  sign-in, it is not worth refusing every caller for.
- :class:`RateLimiter`, the embedded fallback: buckets in the serving process, which is why
  ``ehc serve`` runs one worker without Redis (with N processes a caller would get N times the limit).

The limit is a setting; 0 turns it off (benchmarks do that to measure the request path alone).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from .errors import TooManyRequests
from .shared import Redis, RedisError, Throttled

MAX_BUCKETS = 100_000  # forget idle callers beyond this, so memory stays bounded


class RateLimited(TooManyRequests):
    """The caller's request allowance is spent."""


@dataclass
class _Bucket:
    tokens: float
    stamp: float


def _refuse(per_minute: int, retry_after: int) -> RateLimited:
    return RateLimited(f"Too many requests; at most {per_minute} a minute. Retry in {retry_after} s.",
                       retry_after=retry_after)


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
        raise _refuse(self.per_minute, retry_after)


# GCRA: the bucket's key holds the moment (µs, Redis's clock) at which it would be full again. A request
# is let in when that moment, pushed one interval later, is at most a burst ahead of now; else ``wait``
# is the µs to wait. The key expires when the bucket is full anyway, so idle callers cost nothing. A Lua
# chunk that sets ``wait`` (0: a token was spent), so that a script doing more in the same round trip
# (the nonce claim of a signed request, ``kit.claims``) spends a token by the same rule.
def gcra_spend(key: str, interval: str, burst: str) -> str:
    return f"""
local wait = 0
do
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local interval = tonumber({interval})
  local burst = tonumber({burst})
  local tat = tonumber(redis.call('GET', {key}))
  if tat == nil or tat < now then tat = now end
  local new = tat + interval
  local over = new - now - burst
  if over > 0 then
    wait = math.ceil(over)
  else
    redis.call('SET', {key}, string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
  end
end
"""


_GCRA = gcra_spend("KEYS[1]", "ARGV[1]", "ARGV[2]") + "return wait\n"


class Bucket(NamedTuple):
    """A caller's bucket as a script spends it: its key, and µs per token and of burst."""

    key: str
    interval: int
    burst: int


_redis_down = Throttled()


class SharedRateLimiter:
    """The same bucket as :class:`RateLimiter`, one for every process, in Redis (keys ``<prefix>rl:<key>``)."""

    def __init__(self, client: Redis, per_minute: int, prefix: str) -> None:
        self.per_minute = per_minute
        self._interval = 60_000_000 // per_minute if per_minute > 0 else 0  # µs per token
        self._burst = int(max(1.0, per_minute / 4) * self._interval)
        self._prefix = prefix + "rl:"
        self._script = client.register_script(_GCRA)

    def check(self, key: str, *, now: float | None = None) -> None:  # noqa: ARG002 (Redis's clock decides)
        """Spend one token for ``key`` or raise ``RateLimited`` saying when to retry."""
        if self.per_minute <= 0:
            return
        try:
            wait = int(self._script(keys=[self._prefix + key], args=[self._interval, self._burst]))
        except RedisError as exc:
            _redis_down.warn("rate limit not applied, Redis did not answer: %s", exc)
            return
        self.refuse_if_waiting(wait)

    def bucket(self, key: str) -> Bucket | None:
        """``key``'s bucket, for a script that spends its token along with other work (:func:`gcra_spend`);
        None when the limit is off."""
        return None if self.per_minute <= 0 else Bucket(self._prefix + key, self._interval, self._burst)

    def refuse_if_waiting(self, wait_us: int) -> None:
        """``RateLimited`` when a spend was refused (``wait_us`` > 0), saying when to retry."""
        if wait_us > 0:
            raise _refuse(self.per_minute, max(1, -(-wait_us // 1_000_000)))
