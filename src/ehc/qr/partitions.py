"""The card-use table's month partitions on PostgreSQL (``kit.partitions``): made ahead, emptied of
DEFAULT, and old months taken out only when an operator asks (docs/operations.md).

``ehc serve`` keeps them at start and with every statistics refresh (``keep_use_partitions``):
this month and ``AHEAD`` more are always there, so the verify path writes into a month of its own;
a use dated in a month without partition (an offline upload of old scans) lands in DEFAULT, and
the next upkeep makes its month and moves it there. On SQLite there is nothing to keep.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from ..kit import partitions
from ..kit.clock import utcnow
from ..kit.partitions import Partition
from .models import CardUse

log = logging.getLogger("ehc.qr")

AHEAD = 3  # months made ahead of the current one
TABLE = CardUse.__tablename__
COLUMN = CardUse.at.key


def use_partitions(session: Session) -> list[Partition]:
    """The card-use table's partitions (months in order, then DEFAULT); [] on SQLite."""
    if not partitions.is_partitioned(session):
        return []
    return partitions.partitions(session.connection(), TABLE)


def keep_use_partitions(session: Session, *, ahead: int = AHEAD, now: datetime | None = None) -> list[str]:
    """Make this month's partition and the next ``ahead`` months', and one for each month whose uses
    the DEFAULT partition holds (moving them into it); the names made. Safe to run any time, by several
    processes at once. The caller commits."""
    if not partitions.is_partitioned(session):
        return []
    conn = session.connection()
    this_month = partitions.month_of(now or utcnow())
    months = [partitions.add_months(this_month, n) for n in range(max(0, ahead) + 1)]
    months += partitions.months_in_default(conn, TABLE, COLUMN)
    return partitions.create_months(conn, TABLE, COLUMN, months)


def partition_upkeep(db: Any) -> list[str]:
    """:func:`keep_use_partitions` in a transaction of its own (``ehc serve``'s upkeep)."""
    with db.session() as session:
        made = keep_use_partitions(session)
    if made:
        log.info("card-use partitions made: %s", ", ".join(made))
    return made


def detach_use_partitions(session: Session, before: date, *, drop: bool = False) -> list[str]:
    """Take the months before ``before``'s month out of the card-use table (their uses leave every
    list, count and report): each left as a table of its own to archive, or dropped with ``drop``.
    The names taken out. The caller commits."""
    if not partitions.is_partitioned(session):
        return []
    return partitions.detach_months_before(session.connection(), TABLE, before, drop=drop)
