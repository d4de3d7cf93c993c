"""Database wiring: the declarative base, the engine and sessions. No business rules here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy import DateTime, MetaData, create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


# Connections per process on PostgreSQL; kit.http.InFlightLimit keeps the requests worked on at once
# well below it (IN_FLIGHT).
POOL_SIZE, POOL_OVERFLOW = 10, 20
IN_FLIGHT = 12
# A pooled PostgreSQL connection that sat unused for longer than this is checked with a round trip
# before it is handed out (the server may have restarted meanwhile, or a firewall dropped it); one used
# moments ago is not. Pinging at every checkout cost a round trip on every request that touches the
# database (6% of a card verification's server time). A connection that breaks between two uses
# within this window fails its request with 503 ``database_unavailable`` (kit.http), and SQLAlchemy
# then drops every pooled connection older than the failure, so the next requests reconnect.
PING_AFTER_IDLE_SECONDS = 2.0


def make_engine(url: str) -> Engine:
    # hide_parameters: an error's message and the logs never carry a statement's bound values, which
    # can be a name, a username or a blind index (a traceback is logged for every unexpected error).
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):  # noqa: ANN001
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _sqlite_begin).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # SQLite's deferred transactions let two writers read the same state and then collide;
        # BEGIN IMMEDIATE takes the write lock up front so uniqueness rules hold under load.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, hide_parameters=True)

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record):  # noqa: ANN001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):  # noqa: ANN001
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or used moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as error:
            if not engine.dialect.is_disconnect(error, dbapi_conn, None):
                raise
            alive = False
        if not alive:
            raise exc.DisconnectionError("the pooled connection no longer answers")  # the pool connects afresh

    return engine


class Database:
    """One engine and its session factory; the app, the CLI and the tests each hold one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
