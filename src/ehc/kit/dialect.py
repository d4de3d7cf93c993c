"""What differs between the two databases the platform runs on, behind small named functions.

SQLite (development, tests, small sites) and PostgreSQL (production) agree on almost everything the
domains write; where they do not, the domains call one of these instead of asking for the dialect's
name: a writers' lock (:func:`serialise`, :func:`lock_table`), a bulk load (:func:`copy_rows`), a
China calendar day in SQL (:func:`china_date`), an insert that gives way on a conflict
(:func:`insert_ignore`, :func:`insert_or_take_over`).

Locks. Our SQLite engines begin every transaction with ``BEGIN IMMEDIATE`` (``ehc.db``): a
transaction holds the database's only write lock from its start, so writers already take turns and
every lock here is a no-op. On PostgreSQL the locks are transaction-scoped (advisory or table
locks): released by the transaction's COMMIT or ROLLBACK, never leaked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import ARRAY, Table, any_, bindparam, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from ..crypto import sm3
from .clock import CHINA

POSTGRESQL = "postgresql"
SQLITE = "sqlite"

Bind = Session | Connection | Engine

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


def name(bind: Bind) -> str:
    """The database's dialect name (``postgresql``, ``sqlite``)."""
    if isinstance(bind, Session):
        bind = bind.get_bind()
    return bind.dialect.name


def is_postgresql(bind: Bind) -> bool:
    return name(bind) == POSTGRESQL


def is_sqlite(bind: Bind) -> bool:
    return name(bind) == SQLITE


# -- locks ----------------------------------------------------------------------------------------

def lock_key(key: str | int) -> int:
    """A 64-bit advisory-lock key: an int as it is, a name as the first 8 bytes of its SM3."""
    if isinstance(key, int):
        return key
    return int.from_bytes(sm3(key.encode())[:8], "big", signed=True)


def serialise(session: Session | Connection, key: str | int, *, wait: bool = True) -> bool:
    """Let one transaction at a time past this point for ``key``, until it commits or rolls back.

    PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``; with ``wait=False``
    ``pg_try_advisory_xact_lock``, and False when another transaction holds it). SQLite: nothing to
    do, the transaction holds the database's write lock already (module docstring). True when held.
    """
    if not is_postgresql(session):
        return True
    got = session.execute(_LOCK if wait else _TRY_LOCK, {"key": lock_key(key)}).scalar()
    return wait or bool(got)


def lock_table(session: Session, table: str, mode: str = "SHARE ROW EXCLUSIVE") -> None:
    """Writers of ``table`` take turns until commit (PostgreSQL ``LOCK TABLE ... IN mode MODE``;
    readers are not blocked in the default mode). SQLite: nothing to do (module docstring)."""
    if is_postgresql(session):
        session.execute(text(f"LOCK TABLE {table} IN {mode} MODE"))


# -- bulk loads -----------------------------------------------------------------------------------

def can_copy(bind: Bind) -> bool:
    """Whether :func:`copy_rows` streams (PostgreSQL ``COPY``); elsewhere, insert the rows instead."""
    return is_postgresql(bind)


def copy_rows(connection: Connection, table: str, columns: Iterable[str], payload: bytes) -> None:
    """Stream tab-separated rows (``COPY ... FROM STDIN`` text format) into ``table`` (PostgreSQL only:
    check :func:`can_copy` first).

    A row that breaks a unique or foreign key constraint raises SQLAlchemy's ``IntegrityError``, as
    an INSERT through the engine would (the COPY runs on the driver's connection, below SQLAlchemy);
    the transaction is then aborted.
    """
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    raw = connection.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(payload)
    except Exception as exc:
        if str(getattr(exc, "sqlstate", "") or "").startswith("23"):  # class 23: integrity constraint violation
            raise IntegrityError(statement, None, exc) from exc
        raise


# -- many values ---------------------------------------------------------------------------------

_UNIT = "\x1f"  # the unit separator: in no identifier, id or key


def each_in(bind: Bind, column: ColumnElement[Any], values: Sequence[Any], *, chunk: int = 500) -> Iterator[ColumnElement[bool]]:
    """``column IN values`` as the conditions of as few statements as the database takes: on
    PostgreSQL one, the values as one array parameter (``= ANY``: no statement with thousands of
    bound parameters to render); elsewhere one per ``chunk`` values. Run the query once per condition."""
    if not values:
        return
    if is_postgresql(bind):
        if all(isinstance(value, str) and _UNIT not in value for value in values):
            # One text parameter split by the server: psycopg would check each element of a list for quoting.
            yield column == any_(func.string_to_array(bindparam(None, _UNIT.join(values)), _UNIT))
        else:
            yield column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return
    for start in range(0, len(values), chunk):
        yield column.in_(list(values[start:start + chunk]))


# -- China time in SQL ----------------------------------------------------------------------------

def china_date(bind: Bind, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The China Standard Time calendar day of a UTC timestamp column, in the database's own functions."""
    if is_postgresql(bind):
        return func.date(func.timezone(CHINA.key, column))
    return func.date(column, "+8 hours")  # SQLite keeps UTC text; China has had no daylight saving since 1991


# -- inserts that give way ------------------------------------------------------------------------

_DIALECTS = {POSTGRESQL: postgresql, SQLITE: sqlite}


def insert_ignore(table: Table, key: list[str], returning: str, dialect: str):  # noqa: ANN201
    """``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING returning`` with the row's columns as bind
    parameters of the same names: a row comes back only when this statement inserted it."""
    insert = _DIALECTS[dialect].insert(table).values({c.name: bindparam(c.name) for c in _columns(table, returning)})
    return insert.on_conflict_do_nothing(index_elements=[table.c[k] for k in key]).returning(table.c[returning])


def insert_unless_refused(table: Table, returning: str, dialect: str):  # noqa: ANN201
    """:func:`insert_ignore` giving way to *any* unique index of ``table`` (expression indexes too,
    which a conflict target cannot name): ``INSERT ... ON CONFLICT DO NOTHING RETURNING returning``.
    The caller tells the refusals apart when nothing comes back."""
    insert = _DIALECTS[dialect].insert(table).values({c.name: bindparam(c.name) for c in _columns(table, returning)})
    return insert.on_conflict_do_nothing().returning(table.c[returning])


def insert_or_take_over(table: Table, key: list[str], returning: str, dialect: str, *, expired: str):  # noqa: ANN201
    """Like :func:`insert_ignore`, but a conflicting row whose ``expired`` column is before the bind
    parameter ``now`` is taken over (its columns get the new values): a leftover no longer counts."""
    insert = _DIALECTS[dialect].insert(table).values({c.name: bindparam(c.name) for c in _columns(table, returning)})
    return insert.on_conflict_do_update(
        index_elements=[table.c[k] for k in key],
        set_={c.name: insert.excluded[c.name] for c in _columns(table, returning) if c.name not in key},
        where=table.c[expired] < bindparam("now"),
    ).returning(table.c[returning])


def insert_or_add(table: Table, key: list[str], counter: str, dialect: str):  # noqa: ANN201
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET counter = counter + excluded.counter``, the row's
    columns as bind parameters of the same names: counts added to what is there, in one statement."""
    insert = _DIALECTS[dialect].insert(table).values({c.name: bindparam(c.name) for c in table.columns})
    return insert.on_conflict_do_update(index_elements=[table.c[k] for k in key],
                                        set_={counter: table.c[counter] + insert.excluded[counter]})


def dialects() -> tuple[str, ...]:
    """The dialects :func:`insert_ignore`, :func:`insert_or_take_over` and :func:`insert_or_add`
    build statements for."""
    return tuple(_DIALECTS)


def _columns(table: Table, returning: str) -> list:
    # The row's own columns: an autoincrement key the statement returns is left to the database.
    return [c for c in table.columns if not (c.name == returning and c.autoincrement is True)]
