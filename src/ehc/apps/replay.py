"""The replay store: which nonces each app has already used, for as long as that matters.

A nonce is claimed only for a request that passed every other check, in one statement
(``INSERT ... ON CONFLICT``) whose outcome the database decides: of two copies of a request racing
each other, exactly one claims the nonce, on SQLite (one writer at a time) and on PostgreSQL (the
second insert waits for the first transaction, then sees the conflict). A row left from an earlier
use whose window has passed is taken over by the same statement, so "used within the window" is
exact even before the periodic clean-up has removed it.

The claim (``kit.claims``) commits in a unit of work of its own (:func:`unit_of_work`), before the request's work
starts, so a request that was let in stays spent even if its work then fails and rolls back. That
commit does not wait for the disk (PostgreSQL ``synchronous_commit = off`` for that transaction,
SQLite ``synchronous = NORMAL`` for that commit): a used nonce matters for 300 seconds, and only
its atomic, immediately visible insert is what stops a replay. What a crash of the database server
could lose is the last fraction of a second of claims, which would let a captured copy of one of
those requests through once, within its window and only after such a crash; every later durable
commit (any write of a card, say) flushes the claims before it. The measured alternative, one
fsync per signed request, cost more than the whole signature check (bench/bench_signed.py). This is
the durability a Redis replay store (``SET NX EX``) gives by default; Redis is not wired in because
redis-py is not among the platform's dependencies, and the embedded store needs nothing else.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from ..kit.claims import Claims, unit_of_work
from .models import UsedNonce

__all__ = ["CLEANUP_EVERY", "NONCES", "claim", "unit_of_work"]

CLEANUP_EVERY = timedelta(seconds=60)  # per process; each clean-up is one indexed DELETE

# A row left from an earlier use whose window has passed is taken over by the claim.
NONCES = Claims(UsedNonce.__table__, ["app_id", "nonce"], returning="nonce", take_over_expired=True,
                purge_every=CLEANUP_EVERY)


def claim(connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
    """Record ``nonce`` as used by ``app_id`` until ``expires_at``; False when it is already in use.

    Runs in the caller's transaction: the nonce counts as used once that transaction commits.
    """
    NONCES.purge_due(connection, now)
    return NONCES.claim(connection, now, app_id=app_id, nonce=nonce, expires_at=expires_at)
