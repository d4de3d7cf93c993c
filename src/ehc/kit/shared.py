"""State every worker process must share, in Redis (``EHC_REDIS_URL``), or in this one process.

A province runs the platform as several worker processes on several hosts. Two things a request
spends must then be spent once for all of them: the caller's rate limit (``kit.ratelimit``) and a
signed request's nonce (``kit.claims.SharedClaims``, used by ``apps.replay``). With ``EHC_REDIS_URL``
set they live in Redis; without it the platform falls back on the embedded default: rate limits in
the serving process (so ``ehc serve`` runs one worker) and nonces in the database.

When Redis stops answering, a rate limit lets the request through (it caps a runaway caller, it is
not a guarantee) and logs it; a nonce claim refuses the request with 503 ``shared_state_unavailable``
(a replay window is a guarantee). See docs/operations.md.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from .errors import Problem

log = logging.getLogger("ehc.shared")

Redis = redis.Redis
RedisError = redis.RedisError


class SharedStateUnavailable(Problem):
    status = 503
    code = "shared_state_unavailable"
    title = "Shared state unavailable"


def connect(url: str) -> redis.Redis:
    """A client (a thread-safe connection pool) for ``url``, checked now so that a wrong URL stops the
    process at start rather than at its first request."""
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30)
    client.ping()
    return client


def durability(client: redis.Redis) -> str | None:
    """None when Redis writes every acknowledged command to disk before answering (append-only file
    with ``appendfsync always``), so a claim it acknowledged survives a crash of Redis or of its host;
    otherwise what is missing."""
    try:
        config = client.config_get("append*")
        aof, fsync = config.get("appendonly"), config.get("appendfsync")
    except redis.ResponseError:  # CONFIG is renamed away on managed Redis: INFO still says whether AOF is on
        aof = "yes" if client.info("persistence").get("aof_enabled") else "no"
        fsync = "unknown"
    if aof != "yes":
        return "Redis runs without its append-only file (appendonly no): a crash loses recent claims"
    if fsync != "always":
        return (f"Redis syncs its append-only file {fsync!r}, not 'always': a crash of its host can lose the "
                "last second of claims")
    return None


class Throttled:
    """Log a recurring failure at most once per ``every`` seconds (a dead Redis fails every request)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._next = 0.0
        self._lock = threading.Lock()

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return
            self._next = now + self.every
        log.warning(message, *args)
