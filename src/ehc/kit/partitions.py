"""Month partitions of a PostgreSQL table partitioned by range of a timestamp (``PARTITION BY RANGE``).

A table that grows by the month forever (card uses: a province scans millions of codes a day) is one
table of months on PostgreSQL: an insert touches only its month's indexes, a query bounded by time
reads only its months, and an old month leaves by ``DETACH`` instead of a ``DELETE`` of millions of
rows. The months are China calendar months (the platform's day, ``kit.clock.CHINA``): a report of
a month reads exactly one partition.

Names: ``<table>_YYYY_MM`` for a month, ``<table>_default`` for the DEFAULT partition that catches
any row whose month has no partition yet (an upload of scans months old, a terminal with a wrong
clock), so an insert never fails for want of a partition. PostgreSQL refuses to create a month
whose rows sit in DEFAULT; :func:`create_months` moves them into the new month in the same
transaction.

Locks, so that the writers of the table never wait behind the upkeep: a month is made as a plain
table and then attached (``ATTACH PARTITION`` takes only a SHARE UPDATE EXCLUSIVE lock on the
parent, which inserts do not conflict with; ``CREATE TABLE ... PARTITION OF`` would take an ACCESS
EXCLUSIVE one). Attaching scans the DEFAULT partition under an exclusive lock, which only writers of
a row for a month without partition wait for: DEFAULT is kept empty for that.

PostgreSQL only; on SQLite a table is one table and every function here is not to be called
(:func:`is_partitioned` says False).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .clock import CHINA
from .dialect import Bind, is_postgresql, serialise

_MONTH = re.compile(r"_(\d{4})_(\d{2})$")


@dataclass(frozen=True)
class Partition:
    name: str
    month: date | None  # the first day of its month; None for the DEFAULT partition
    rows: int  # PostgreSQL's estimate (pg_class.reltuples, as of the last ANALYZE); -1 when never analysed


# -- months -------------------------------------------------------------------------------------------

def month_of(moment: datetime | date) -> date:
    """The first day of the China calendar month of a moment (or of a day)."""
    day = moment.astimezone(CHINA).date() if isinstance(moment, datetime) else moment
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month's range [start, end): China midnight of its first day and of the next month's."""
    return (datetime.combine(month, time(0), CHINA), datetime.combine(add_months(month, 1), time(0), CHINA))


def partition_name(table: str, month: date) -> str:
    return f"{table}_{month:%Y_%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


# -- what is there ------------------------------------------------------------------------------------

def is_partitioned(bind: Bind) -> bool:
    """Whether this database partitions tables at all (PostgreSQL)."""
    return is_postgresql(bind)


def partitions(conn: Connection, table: str) -> list[Partition]:
    """The table's partitions, months in order, then DEFAULT; [] when the table is not partitioned."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.reltuples::bigint FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:table)"), {"table": table})
    found = []
    for name, is_default, rows_estimate in rows:
        match = _MONTH.search(name)
        month = None if is_default or match is None else date(int(match[1]), int(match[2]), 1)
        found.append(Partition(name, month, int(rows_estimate)))
    return sorted(found, key=lambda p: (p.month is None, p.month or date.min, p.name))


def partition_tables(bind: Bind) -> set[str]:
    """Every table of the database's schema that is a partition of another: not a table of its own for
    whoever lists tables (the model comparison, the backup, which reads a partitioned table's rows
    through its parent)."""
    if not is_postgresql(bind):
        return set()
    return set(bind.execute(text(
        "SELECT relname FROM pg_class WHERE relispartition AND relnamespace = current_schema()::regnamespace")
    ).scalars())


def months_in_default(conn: Connection, table: str, column: str) -> list[date]:
    """The months of the rows the DEFAULT partition holds (each a month with no partition of its own)."""
    if conn.scalar(text("SELECT to_regclass(:name)"), {"name": default_name(table)}) is None:
        return []
    rows = conn.execute(text(
        f"SELECT DISTINCT date_trunc('month', {column} AT TIME ZONE :zone)::date FROM {default_name(table)}"),
        {"zone": CHINA.key})
    return sorted(rows.scalars())


# -- upkeep -------------------------------------------------------------------------------------------

def create_months(conn: Connection, table: str, column: str, months: Iterable[date]) -> list[str]:
    """Make each month's partition that is not there yet, moving the DEFAULT partition's rows of that
    month into it; the names of those made. One caller at a time per table (an advisory lock until the
    transaction ends): two workers starting together do not both make a month. The caller commits."""
    serialise(conn, f"ehc.partitions:{table}")
    existing = {p.month for p in partitions(conn, table)}
    made = []
    for month in sorted({month_of(m) for m in months} - existing):
        _create_month(conn, table, column, month)
        made.append(partition_name(table, month))
    return made


def _create_month(conn: Connection, table: str, column: str, month: date) -> None:
    name, default = partition_name(table, month), default_name(table)
    start, end = month_bounds(month)
    bounds = {"start": start, "end": end}
    conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    # Attaching proves every row of the new table is in range: a constraint that says so spares the scan.
    conn.execute(text(f"ALTER TABLE {name} ADD CONSTRAINT {name}_in_month "
                      f"CHECK ({column} >= '{start.isoformat()}' AND {column} < '{end.isoformat()}')"))
    columns = ", ".join(_columns(conn, table))
    conn.execute(text(f"WITH moved AS (DELETE FROM {default} WHERE {column} >= :start AND {column} < :end "
                      f"RETURNING {columns}) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved"), bounds)
    conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} "
                      f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"))
    conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_in_month"))  # the partition bound says it now


def detach_months_before(conn: Connection, table: str, month: date, *, drop: bool,
                         lock_timeout: str = "5s") -> list[str]:
    """Take the months before ``month`` out of the table (``DETACH PARTITION``): each becomes a table of
    its own, to archive and drop, or is dropped at once with ``drop``. The names of those taken out.

    Detaching locks the whole table for a moment (ACCESS EXCLUSIVE on the parent): a writer in a long
    transaction would make it wait, and every writer behind it; ``lock_timeout`` gives up instead."""
    serialise(conn, f"ehc.partitions:{table}")
    conn.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
    done = []
    for partition in partitions(conn, table):
        if partition.month is None or partition.month >= month_of(month):
            continue
        conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {partition.name}"))
        if drop:
            conn.execute(text(f"DROP TABLE {partition.name}"))
        done.append(partition.name)
    return done


def _columns(conn: Connection, table: str) -> list[str]:
    return list(conn.execute(text(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum"), {"table": table}).scalars())
