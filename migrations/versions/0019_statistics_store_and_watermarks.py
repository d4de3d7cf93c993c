"""statistics: the analytical store of events without personal data, and its watermarks

Revision ID: 0019
Revises: 0020
Create Date: 2026-12-03 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db

revision = '0019'
down_revision = '0020'
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'stats_events',
        sa.Column('id', _BigId, autoincrement=True, nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('source_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('hour', sa.SmallInteger(), nullable=False),
        sa.Column('region_code', sa.String(length=6), nullable=False),
        sa.Column('institution_id', sa.String(length=24), nullable=True),
        sa.Column('channel', sa.String(length=4), nullable=True),
        sa.Column('care_step', sa.String(length=7), nullable=True),
        sa.Column('terminal_type', sa.String(length=2), nullable=True),
        sa.Column('document_type', sa.String(length=2), nullable=True),
        sa.Column('age_band', sa.String(length=5), nullable=True),
        sa.Column('sex', sa.String(length=1), nullable=True),
        sa.Column('from_status', sa.String(length=16), nullable=True),
        sa.Column('to_status', sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stats_events')),
        sa.UniqueConstraint('source', 'source_id', name='uq_stats_events_source'),
    )
    op.create_index('ix_stats_events_source_day', 'stats_events', ['source', 'day'], unique=False)
    op.create_index('ix_stats_events_region', 'stats_events', ['region_code'], unique=False)
    op.create_table(
        'stats_watermarks',
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('events', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('source', name=op.f('pk_stats_watermarks')),
    )


def downgrade() -> None:
    op.drop_table('stats_watermarks')
    op.drop_index('ix_stats_events_region', table_name='stats_events')
    op.drop_index('ix_stats_events_source_day', table_name='stats_events')
    op.drop_table('stats_events')
