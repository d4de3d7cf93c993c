"""Keys claimed once: one mechanism for every "this may be used only once" table.

A claim is one statement whose outcome the database decides (``INSERT ... ON CONFLICT DO NOTHING
RETURNING``, or ``DO UPDATE ... WHERE expired`` when a leftover past its expiry may be taken over):
of two transactions claiming the same key, exactly one gets a row back, on SQLite (one writer at a
time) and on PostgreSQL (the second insert waits for the first transaction, then sees the
conflict). Any other database: a savepoint around a plain insert. A claim counts once the
transaction it ran in commits.

Claims expire: every table has an expiry column, and each process drops the expired rows at most
once per ``purge_every`` (:meth:`Claims.purge_due`: one indexed DELETE, in the caller's transaction).
Users: the nonces of signed requests (``apps.replay``) and the used dynamic QR codes (``qr.service``).

:func:`unit_of_work` is the short transaction of its own that a claim made before the request's own
work runs in (see ``apps.replay`` for why); its commit waits for the disk, so a claim the caller
was told about survives a crash.

:class:`SharedClaims` is the same "once" in Redis (``SET NX EX``), for keys every worker process
claims and that matter only for a while (signed requests' nonces, ``kit.shared``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, delete
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement
from sqlalchemy.orm import Session

from . import dialect
from .ratelimit import Bucket, gcra_spend
from .shared import Redis, RedisError, SharedStateUnavailable


class Claims:
    """A table of keys (``key`` columns, unique together) each claimed once until ``expires``."""

    def __init__(self, table: Table, key: list[str], *, returning: str, expires: str = "expires_at",
                 take_over_expired: bool = False, purge_every: timedelta = timedelta(seconds=60),
                 also_returning: tuple[ColumnElement, ...] = ()) -> None:
        self.table = table
        self._also = also_returning
        self.purge_every = purge_every
        # Built once: statements are cheap to run and costly to build.
        if take_over_expired:  # a leftover past its expiry is claimed again by the same statement
            self._claim = {d: dialect.insert_or_take_over(table, key, returning, d, expired=expires)
                           for d in dialect.dialects()}
        else:
            self._claim = {d: dialect.insert_ignore(table, key, returning, d) for d in dialect.dialects()}
        if also_returning:  # more columns after the claimed key: one statement still, one round trip
            self._claim = {d: statement.returning(*also_returning) for d, statement in self._claim.items()}
        expired = table.c[expires] < bindparam("now")
        self._forget_expired = delete(table).where(expired)
        self._forget_expired_one = delete(table).where(expired, *(table.c[k] == bindparam(k) for k in key)) \
            if take_over_expired else None
        self._insert = table.insert().values({c.name: bindparam(c.name) for c in table.columns
                                              if not (c.name == returning and c.autoincrement is True)})
        self._lock = threading.Lock()
        self._next_purge: datetime | None = None

    def claim(self, bind: Session | Connection, now: datetime, **values: object) -> bool:
        """Claim the row ``values`` (key and expiry); False when its key is claimed already.

        Runs in the caller's transaction; ``now`` decides whether a leftover has expired."""
        return self.claim_returning(bind, now, **values) is not None

    def claim_returning(self, bind: Session | Connection, now: datetime, **values: object) -> tuple | None:
        """:meth:`claim`, with what the statement returned: the claimed key, then ``also_returning``'s
        values (None on a database without ``RETURNING`` for a claim); None when already claimed."""
        values = {**values, "now": now}
        statement = self._claim.get(dialect.name(bind))
        if statement is not None:
            return bind.execute(statement, values).first()
        if self._forget_expired_one is not None:
            bind.execute(self._forget_expired_one, values)
        try:
            with bind.begin_nested():
                bind.execute(self._insert, values)
        except IntegrityError:
            return None
        return (None,) * (1 + len(self._also))

    def purge(self, bind: Session | Connection, now: datetime) -> int:
        """Forget the claims whose expiry is before ``now``; how many were dropped."""
        return bind.execute(self._forget_expired, {"now": now}).rowcount or 0

    def purge_due(self, bind: Session | Connection, now: datetime) -> None:
        """:meth:`purge`, at most once per ``purge_every`` in this process."""
        with self._lock:
            if self._next_purge is not None and now < self._next_purge:
                return
            self._next_purge = now + self.purge_every
        self.purge(bind, now)


# A claim, and the value of another key read in the same round trip. A key with no value gets one from
# Redis's clock (a new or an emptied Redis), so a value, once replaced, never comes back. With a third
# key, a token of that rate-limit bucket is spent first (the caller's allowance, ``kit.ratelimit``): a
# refused spend claims nothing and answers the µs to wait.
_CLAIM_AND_READ = (
    "if #KEYS > 2 then\n" + gcra_spend("KEYS[3]", "ARGV[2]", "ARGV[3]") + """
  if wait > 0 then return {0, '', wait} end
end
local claimed = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
local value = redis.call('GET', KEYS[2])
if not value then
  local now = redis.call('TIME')
  value = 'redis-' .. now[1] .. '.' .. now[2]
  redis.call('SET', KEYS[2], value)
end
if claimed then return {1, value, 0} end
return {0, value, 0}
""")


class SharedClaims:
    """Keys claimed once in Redis, each for ``ttl`` seconds (keys ``<prefix><name>:<key>``).

    ``SET key 1 NX EX ttl`` is one command Redis runs alone: of any number of processes claiming the
    same key, exactly one is told it succeeded. The claim is as durable as Redis's append-only file
    (``kit.shared.durability``: ``appendfsync always`` writes it to disk before Redis answers). When
    Redis does not answer, nothing can be claimed: :class:`SharedStateUnavailable` (503).

    ``also_read``: a key (``<prefix><also_read>``) whose value :meth:`claim_reading` returns with the
    claim, from the same script: one round trip (the nonce claim reads the generation of apps' keys)."""

    def __init__(self, client: Redis, prefix: str, name: str, *, also_read: str | None = None) -> None:
        self._client = client
        self._prefix = f"{prefix}{name}:"
        self._also = f"{prefix}{also_read}" if also_read else None
        self._script = client.register_script(_CLAIM_AND_READ) if also_read else None

    def claim(self, key: str, ttl: int) -> bool:
        try:
            return bool(self._client.set(self._prefix + key, b"1", nx=True, ex=max(1, int(ttl))))
        except RedisError as exc:
            raise SharedStateUnavailable("The replay store did not answer; try again shortly.") from exc

    def claim_reading(self, key: str, ttl: int, *, spending: Bucket | None = None) -> tuple[bool, str, int]:
        """:meth:`claim`, and the value of ``also_read`` as Redis had it then; with ``spending``, a token
        of that bucket spent first, in the same script: the third value is 0, or the µs to wait when
        the bucket is empty (then nothing was claimed)."""
        keys, args = [self._prefix + key, self._also], [max(1, int(ttl))]
        if spending is not None:
            keys.append(spending.key)
            args += [spending.interval, spending.burst]
        try:
            claimed, value, wait = self._script(keys=keys, args=args)
        except RedisError as exc:
            raise SharedStateUnavailable("The replay store did not answer; try again shortly.") from exc
        return bool(claimed), value.decode() if isinstance(value, bytes) else str(value), int(wait)


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """A short transaction on a connection of its own, committed (and on disk) at the end of the block,
    rolled back if the block raises. For a claim that must stand before, and whatever becomes of, the
    request's own transaction."""
    with engine.connect() as connection, connection.begin():
        yield connection
