"""The replay store: which nonces each app has already used, for as long as that matters.

A nonce is claimed only for a request that passed every other check, in one statement
(``INSERT ... ON CONFLICT``) whose outcome the database decides: of two copies of a request racing
each other, exactly one claims the nonce, on SQLite (one writer at a time) and on PostgreSQL (the
second insert waits for the first transaction, then sees the conflict). A row left from an earlier
use whose window has passed is taken over by the same statement, so "used within the window" is
exact even before the periodic clean-up has removed it.

The claim commits in a unit of work of its own (:func:`unit_of_work`), before the request's work
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

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .models import UsedNonce

CLEANUP_EVERY = timedelta(seconds=60)  # per process; each clean-up is one indexed DELETE

_table = UsedNonce.__table__
_lock = threading.Lock()
_next_cleanup: datetime | None = None


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """A short transaction on a connection of its own whose commit does not wait for the disk;
    rolled back if the block raises. Used before the request's own session has begun (on SQLite
    that session would otherwise hold the write lock this one needs)."""
    with engine.connect() as connection:
        raw = connection.connection.driver_connection if engine.dialect.name == "sqlite" else None
        if raw is not None:  # SQLite allows changing this only outside a transaction
            previous = raw.execute("PRAGMA synchronous").fetchone()[0]
            raw.execute("PRAGMA synchronous = NORMAL")
        try:
            with connection.begin():  # commits at the end of the block, rolls back on an exception
                yield connection
                if engine.dialect.name == "postgresql":
                    connection.execute(_ASYNC_COMMIT)
        finally:
            if raw is not None:
                raw.execute(f"PRAGMA synchronous = {int(previous)}")


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def _upsert(dialect):  # noqa: ANN001, ANN202
    insert = dialect.insert(_table).values(app_id=bindparam("app_id"), nonce=bindparam("nonce"),
                                           expires_at=bindparam("expires_at"))
    return insert.on_conflict_do_update(
        index_elements=[_table.c.app_id, _table.c.nonce],
        set_={"expires_at": insert.excluded.expires_at},
        where=_table.c.expires_at < bindparam("now"),  # only an expired leftover may be taken over
    ).returning(_table.c.nonce)  # a row comes back only when the nonce was claimed


# Built once: statements are cheap to run and costly to build.
_CLAIM = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}
_FORGET_EXPIRED = delete(UsedNonce).where(UsedNonce.expires_at < bindparam("now"))
_FORGET_EXPIRED_ONE = _FORGET_EXPIRED.where(UsedNonce.app_id == bindparam("app_id"),
                                            UsedNonce.nonce == bindparam("nonce"))
_INSERT = _table.insert().values(app_id=bindparam("app_id"), nonce=bindparam("nonce"),
                                 expires_at=bindparam("expires_at"))


def claim(connection: Connection, app_id: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
    """Record ``nonce`` as used by ``app_id`` until ``expires_at``; False when it is already in use.

    Runs in the caller's transaction: the nonce counts as used once that transaction commits.
    """
    _maybe_clean_up(connection, now)
    values = {"app_id": app_id, "nonce": nonce, "expires_at": expires_at, "now": now}
    statement = _CLAIM.get(connection.dialect.name)
    if statement is not None:
        return connection.execute(statement, values).first() is not None
    # Any other database: a savepoint around a plain insert.
    connection.execute(_FORGET_EXPIRED_ONE, values)
    try:
        with connection.begin_nested():
            connection.execute(_INSERT, values)
    except IntegrityError:
        return False
    return True


def _maybe_clean_up(connection: Connection, now: datetime) -> None:
    global _next_cleanup
    with _lock:
        if _next_cleanup is not None and now < _next_cleanup:
            return
        _next_cleanup = now + CLEANUP_EVERY
    connection.execute(_FORGET_EXPIRED, {"now": now})
