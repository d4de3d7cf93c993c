"""statistics: the month cube (the daily cube folded to months and prefectures: counts per month,
source, kind, to-status, prefecture and one breakdown's value), filled here from the events already
stored; the refresh keeps it up to date with the daily cube from now on

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04 16:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None

# dimension -> the store's column giving its value (as statistics.service.CUBE_DIMENSIONS, written
# out here: a migration does not follow the code as it changes later)
_DIMENSIONS = {
    "": "''", "channel": "channel", "document_type": "document_type", "age_band": "age_band", "sex": "sex",
    "institution": "institution_id", "care_step": "care_step", "terminal_type": "terminal_type",
    "hour": "CAST(hour AS VARCHAR(2))",
}


def upgrade() -> None:
    op.create_table(
        'stats_month_cube',
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('dimension', sa.String(length=16), nullable=False),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('to_status', sa.String(length=16), nullable=False),
        sa.Column('region_code', sa.String(length=6), nullable=False),
        sa.Column('value', sa.String(length=24), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('source', 'dimension', 'month', 'kind', 'to_status', 'region_code', 'value',
                                name=op.f('pk_stats_month_cube')),
    )
    # The month's first day: SQLite keeps dates as yyyy-mm-dd text.
    month = ("date(day, 'start of month')" if op.get_bind().dialect.name == "sqlite"
             else "CAST(date_trunc('month', day) AS DATE)")
    prefecture = "substr(region_code, 1, 4) || '00'"
    for dimension, column in _DIMENSIONS.items():
        value = f"coalesce({column}, '')" if column != "''" else "''"
        grouped = f", {value}" if column != "''" else ""  # PostgreSQL groups by no constant
        op.execute(
            "INSERT INTO stats_month_cube (source, dimension, month, kind, to_status, region_code, value, count) "
            f"SELECT source, '{dimension}', {month}, kind, coalesce(to_status, ''), {prefecture}, {value}, count(*) "
            f"FROM stats_events GROUP BY source, {month}, kind, coalesce(to_status, ''), {prefecture}{grouped}")


def downgrade() -> None:
    op.drop_table('stats_month_cube')
