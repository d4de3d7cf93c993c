"""statistics: the daily cube (counts per day, source, kind, to-status, county and one breakdown's
value), filled here from the events already stored; the refresh keeps it up to date from now on

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 14:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
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
        'stats_cube',
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('dimension', sa.String(length=16), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('to_status', sa.String(length=16), nullable=False),
        sa.Column('region_code', sa.String(length=6), nullable=False),
        sa.Column('value', sa.String(length=24), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('source', 'dimension', 'day', 'kind', 'to_status', 'region_code', 'value',
                                name=op.f('pk_stats_cube')),
    )
    for dimension, column in _DIMENSIONS.items():
        value = f"coalesce({column}, '')" if column != "''" else "''"
        grouped = f", {value}" if column != "''" else ""  # PostgreSQL groups by no constant
        op.execute(
            "INSERT INTO stats_cube (source, dimension, day, kind, to_status, region_code, value, count) "
            f"SELECT source, '{dimension}', day, kind, coalesce(to_status, ''), region_code, {value}, count(*) "
            f"FROM stats_events GROUP BY source, day, kind, coalesce(to_status, ''), region_code{grouped}")


def downgrade() -> None:
    op.drop_table('stats_cube')
