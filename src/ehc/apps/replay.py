"""The replay store: which nonces each app has already used, for as long as that matters.

A nonce is claimed only for a request that passed every other check, by one operation whose outcome
the store decides: of two copies of a request racing each other, even through different worker
processes or hosts, exactly one claims the nonce. The claim is made before the request's work starts
and stands whatever becomes of that work, so a request that was let in stays spent even if its work
then fails and rolls back; and it is on disk before the request goes on, so a crash cannot let a
captured copy through within its window. Two stores (``Platform`` picks one):

- :class:`SharedNonces`, with ``EHC_REDIS_URL``: ``SET <prefix>nonce:<app>:<nonce> NX EX <window>``
  (``kit.claims.SharedClaims``); Redis forgets a nonce when its window has passed. Durable when Redis
  runs with ``appendonly yes`` and ``appendfsync always`` (checked at start, ``kit.shared.durability``,
  and refused in production without it; docs/operations.md).
- :class:`DatabaseNonces`, the embedded fallback: ``INSERT ... ON CONFLICT`` into ``used_nonces``
  (``kit.claims.Claims``), in a unit of work of its own (``kit.claims.unit_of_work``) whose commit
  waits for the disk. On SQLite one writer at a time decides; on PostgreSQL the second insert waits
  for the first transaction, then sees the conflict. A row left from an earlier use whose window has
  passed is taken over by the same statement, and each process drops expired rows once a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ..kit.claims import Claims, SharedClaims, unit_of_work
from ..kit.shared import Redis
from .models import UsedNonce

__all__ = ["CLEANUP_EVERY", "NONCES", "DatabaseNonces", "NonceStore", "SharedNonces", "claim"]

CLEANUP_EVERY = timedelta(seconds=60)  # per process; each clean-up is one indexed DELETE

# A row left from an earlier use whose window has passed is taken over by the claim.
NONCES = Claims(UsedNonce.__table__, ["app_id", "nonce"], returning="nonce", take_over_expired=True,
                purge_every=CLEANUP_EVERY)


def claim(connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
    """Record ``nonce`` as used by ``app_id`` until ``expires_at`` in the database; False when it is
    already in use. Runs in the caller's transaction: the nonce counts as used once that commits."""
    NONCES.purge_due(connection, now)
    return NONCES.claim(connection, now, app_id=app_id, nonce=nonce, expires_at=expires_at)


class NonceStore(Protocol):
    def checking(self, engine: Engine, session: Session | None = None) -> AbstractContextManager[Connection]:
        """The connection the request's signature is checked on (apps and keys are read there);
        ``session`` is the request's own, which a store that writes nothing there may read through."""

    def claim(self, connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
        """Claim ``nonce`` for ``app_id`` until ``expires_at``; False when it is already in use."""


class DatabaseNonces:
    """Nonces in ``used_nonces``: the check and the claim in one short transaction, committed on disk."""

    def checking(self, engine: Engine, session: Session | None = None) -> AbstractContextManager[Connection]:  # noqa: ARG002
        return unit_of_work(engine)  # the claim must commit whatever becomes of the request's transaction

    def claim(self, connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
        return claim(connection, app_id, nonce, expires_at, now)


class SharedNonces:
    """Nonces in Redis, one store for every worker process; the check only reads the database, through
    the request's own session when there is one (no second connection, no second transaction)."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._claims = SharedClaims(client, prefix, "nonce")

    @staticmethod
    @contextmanager
    def _reading(engine: Engine) -> Iterator[Connection]:
        with engine.connect() as connection:
            yield connection

    def checking(self, engine: Engine, session: Session | None = None) -> AbstractContextManager[Connection]:
        return nullcontext(session.connection()) if session is not None else self._reading(engine)

    def claim(self, connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> bool:  # noqa: ARG002
        return self._claims.claim(f"{app_id}:{nonce}", int((expires_at - now).total_seconds()) + 1)
