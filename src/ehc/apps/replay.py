"""The replay store: which nonces each app has already used, for as long as that matters.

A nonce is claimed only for a request that passed every other check, by one operation whose outcome
the store decides: of two copies of a request racing each other, even through different worker
processes or hosts, exactly one claims the nonce. The claim is made before the request's work starts
and stands whatever becomes of that work, so a request that was let in stays spent even if its work
then fails and rolls back; and it is on disk before the request goes on, so a crash cannot let a
captured copy through within its window. Two stores (``Platform`` picks one):

- :class:`SharedNonces`, with ``EHC_REDIS_URL``: ``SET <prefix>nonce:<app>:<nonce> NX EX <window>``
  (``kit.claims.SharedClaims``, in a script that also reads the keys' generation); Redis forgets a nonce when its window has passed. Durable when Redis
  runs with ``appendonly yes`` and ``appendfsync always`` (checked at start, ``kit.shared.durability``,
  and refused in production without it; docs/operations.md).
- :class:`DatabaseNonces`, the embedded fallback: ``INSERT ... ON CONFLICT`` into ``used_nonces``
  (``kit.claims.Claims``), in a unit of work of its own (``kit.claims.unit_of_work``) whose commit
  waits for the disk. On SQLite one writer at a time decides; on PostgreSQL the second insert waits
  for the first transaction, then sees the conflict. A row left from an earlier use whose window has
  passed is taken over by the same statement, and each process drops expired rows once a minute.

With Redis the app's rate limit is spent by the claim's own script too (``SharedNonces(app_limit=)``):
a token first, then the nonce, in one round trip; an app over its allowance is refused (429) with
nothing claimed, as when the limit was checked before the claim.

Every claim also tells the generation of apps' keys it saw (:class:`Claim`), at no extra cost: the
Redis script reads ``<prefix>apps:keys`` in the same round trip, the database claim returns the
``app_keys_generation`` row from the same statement. A change of an app or of its keys replaces the
generation (``apps.service``: in the change's transaction, and in Redis once it is committed), so a
process that cached a key under one generation knows from its next claim that it must read it again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple, Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ..kit import shared
from ..kit.claims import Claims, SharedClaims, unit_of_work
from ..kit.ratelimit import SharedRateLimiter
from ..kit.shared import Redis
from .models import UsedNonce
from .repository import KEYS_GENERATION

__all__ = ["CLEANUP_EVERY", "NONCES", "Claim", "DatabaseNonces", "NonceStore", "SharedNonces", "announce_keys_changed",
           "claim"]

CLEANUP_EVERY = timedelta(seconds=60)  # per process; each clean-up is one indexed DELETE

# A row left from an earlier use whose window has passed is taken over by the claim.
log = logging.getLogger("ehc.apps")

# The claim returns the generation of apps' keys too (one statement).
NONCES = Claims(UsedNonce.__table__, ["app_id", "nonce"], returning="nonce", take_over_expired=True,
                purge_every=CLEANUP_EVERY, also_returning=(KEYS_GENERATION,))


class Claim(NamedTuple):
    claimed: bool  # False: the nonce was already in use
    keys_generation: str | None  # the generation of apps' keys the claim saw; None: unknown, cache nothing


def claim(connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> Claim:
    """Record ``nonce`` as used by ``app_id`` until ``expires_at`` in the database (not claimed when it
    is already in use). Runs in the caller's transaction: the nonce counts as used once that commits."""
    NONCES.purge_due(connection, now)
    row = NONCES.claim_returning(connection, now, app_id=app_id, nonce=nonce, expires_at=expires_at)
    return Claim(False, None) if row is None else Claim(True, row[1])


# Where the generation lives in Redis (``kit.claims.SharedClaims`` makes one from Redis's clock when
# Redis has none, so a generation never comes back once replaced).
_GENERATION = "apps:keys"


@lru_cache(maxsize=8)
def _announcer(url: str) -> Redis:
    return shared.connect(url)


def announce_keys_changed(redis_url: str, prefix: str, *, committed: bool = False) -> None:
    """Replace the generation of apps' keys in Redis: every process's next claim sees it and reads the
    keys again. Before the change commits (``committed`` False) a Redis that does not answer refuses
    the change (``SharedStateUnavailable``: no process could be told of it); after, it is logged as an
    error, the change standing (make it again: revoking twice is allowed and announces it again)."""
    for attempt in range(3):
        try:
            _announcer(redis_url).set(f"{prefix}{_GENERATION}", secrets.token_hex(16))
            return
        except shared.RedisError as exc:
            if attempt < 2:
                continue
            if committed:
                log.error("a change of apps' keys is committed but Redis did not hear of it (%s): workers may "
                          "accept a revoked key until the change is made again", exc)
                return
            raise shared.SharedStateUnavailable("Redis does not answer, so the workers could not be told of "
                                                "this change; nothing was changed. Try again shortly.") from exc


class NonceStore(Protocol):
    spends_app_rate: bool  # the claim spends the app's rate limit itself (else the caller checks it first)

    def checking(self, engine: Engine, session: Session | None = None) -> AbstractContextManager[Connection]:
        """The connection the request's signature is checked on (apps and keys are read there);
        ``session`` is the request's own, which a store that writes nothing there may read through."""

    def claim(self, connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> Claim:
        """Claim ``nonce`` for ``app_id`` until ``expires_at`` (not claimed when it is already in use),
        with the generation of apps' keys seen at that moment."""


class DatabaseNonces:
    """Nonces in ``used_nonces``: the check and the claim in one short transaction, committed on disk."""

    spends_app_rate = False

    def checking(self, engine: Engine, session: Session | None = None) -> AbstractContextManager[Connection]:  # noqa: ARG002
        return unit_of_work(engine)  # the claim must commit whatever becomes of the request's transaction

    def claim(self, connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> Claim:
        return claim(connection, app_id, nonce, expires_at, now)


class SharedNonces:
    """Nonces in Redis, one store for every worker process; the check only reads the database, through
    the request's own session when there is one (no second connection, no second transaction)."""

    def __init__(self, client: Redis, prefix: str, *, app_limit: SharedRateLimiter | None = None) -> None:
        self._claims = SharedClaims(client, prefix, "nonce", also_read=_GENERATION)
        self._app_limit = app_limit
        self.spends_app_rate = app_limit is not None

    @staticmethod
    @contextmanager
    def _reading(engine: Engine) -> Iterator[Connection]:
        with engine.connect() as connection:
            yield connection

    def checking(self, engine: Engine, session: Session | None = None) -> AbstractContextManager[Connection]:
        # The session itself, not its connection: a request whose app key is cached then begins no
        # transaction at all for its authentication (no BEGIN, no COMMIT).
        return nullcontext(session) if session is not None else self._reading(engine)

    def claim(self, connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> Claim:  # noqa: ARG002
        bucket = self._app_limit.bucket(f"app:{app_id}") if self._app_limit is not None else None
        claimed, generation, wait = self._claims.claim_reading(
            f"{app_id}:{nonce}", int((expires_at - now).total_seconds()) + 1, spending=bucket)
        if self._app_limit is not None:
            self._app_limit.refuse_if_waiting(wait)
        return Claim(claimed, generation)
