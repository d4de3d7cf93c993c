"""qr: card_uses partitioned by China calendar month of ``at`` on PostgreSQL (SQLite unchanged)

The table becomes ``PARTITION BY RANGE (at)`` with every row kept and every id the same: one
partition per month that holds rows, this month and the next three, and a DEFAULT partition for any
other month (``ehc serve`` makes the months ahead and empties DEFAULT from then on, see
``kit/partitions.py``). A partitioned table's primary key holds its partition key: (id, at); the ids
still come from the same sequence, so they stay unique. The indexes are the same, on every partition.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-04 17:00:00.000000
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

CHINA = ZoneInfo("Asia/Shanghai")
AHEAD = 3  # months made ahead of the current one

# The indexes of the table (migrations 0007 and 0008), made again on the new table.
INDEXES = (("ix_card_uses_at", "at"), ("ix_card_uses_ehc_id", "ehc_id"),
           ("ix_card_uses_institution_id", "institution_id"), ("ix_card_uses_key_nonce", "key_id, nonce"),
           ("ix_card_uses_person_id", "person_id"), ("ix_card_uses_region_code", "region_code"))


def _next_month(month: date, n: int = 1) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _bound(month: date) -> str:
    return datetime.combine(month, time(0), CHINA).isoformat()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.execute(sa.text("ALTER SEQUENCE card_uses_id_seq OWNED BY NONE"))  # it outlives the old table
    bind.execute(sa.text("ALTER TABLE card_uses RENAME TO card_uses_unpartitioned"))
    bind.execute(sa.text("CREATE TABLE card_uses (LIKE card_uses_unpartitioned INCLUDING DEFAULTS) "
                         "PARTITION BY RANGE (at)"))
    months = set(bind.execute(sa.text(
        "SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'Asia/Shanghai')::date FROM card_uses_unpartitioned"
    )).scalars())
    this_month = datetime.now(CHINA).date().replace(day=1)
    months |= {_next_month(this_month, n) for n in range(AHEAD + 1)}
    for month in sorted(months):
        bind.execute(sa.text(f"CREATE TABLE card_uses_{month:%Y_%m} PARTITION OF card_uses "
                             f"FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(_next_month(month))}')"))
    bind.execute(sa.text("CREATE TABLE card_uses_default PARTITION OF card_uses DEFAULT"))
    # Rows first, indexes after: building an index once is faster than keeping it up row by row.
    bind.execute(sa.text("INSERT INTO card_uses SELECT * FROM card_uses_unpartitioned"))
    bind.execute(sa.text("DROP TABLE card_uses_unpartitioned"))
    _index(bind, "id, at")
    bind.execute(sa.text("ALTER SEQUENCE card_uses_id_seq OWNED BY card_uses.id"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.execute(sa.text("ALTER SEQUENCE card_uses_id_seq OWNED BY NONE"))
    bind.execute(sa.text("CREATE TABLE card_uses_unpartitioned (LIKE card_uses INCLUDING DEFAULTS)"))
    bind.execute(sa.text("INSERT INTO card_uses_unpartitioned SELECT * FROM card_uses"))
    bind.execute(sa.text("DROP TABLE card_uses"))  # and its partitions
    bind.execute(sa.text("ALTER TABLE card_uses_unpartitioned RENAME TO card_uses"))
    _index(bind, "id")
    bind.execute(sa.text("ALTER SEQUENCE card_uses_id_seq OWNED BY card_uses.id"))


def _index(bind: sa.Connection, primary_key: str) -> None:
    bind.execute(sa.text(f"ALTER TABLE card_uses ADD CONSTRAINT pk_card_uses PRIMARY KEY ({primary_key})"))
    for name, columns in INDEXES:
        bind.execute(sa.text(f"CREATE INDEX {name} ON card_uses ({columns})"))
