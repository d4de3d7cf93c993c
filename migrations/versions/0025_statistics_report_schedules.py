"""statistics: report schedules and their deliveries (one file per schedule and due day)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'stats_schedules',
        sa.Column('id', _BigId, autoincrement=True, nullable=False),
        sa.Column('report', sa.String(length=16), nullable=False),
        sa.Column('indicator', sa.String(length=24), nullable=True),
        sa.Column('breakdown', sa.String(length=24), nullable=True),
        sa.Column('period', sa.String(length=8), nullable=True),
        sa.Column('region_code', sa.String(length=6), nullable=True),
        sa.Column('frequency', sa.String(length=8), nullable=False),
        sa.Column('weekday', sa.SmallInteger(), nullable=True),
        sa.Column('format', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_on', sa.Date(), nullable=False),
        sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stats_schedules')),
    )
    with op.batch_alter_table('stats_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stats_schedules_region_code'), ['region_code'], unique=False)
    op.create_table(
        'stats_deliveries',
        sa.Column('id', _BigId, autoincrement=True, nullable=False),
        sa.Column('schedule_id', _BigId, nullable=False),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('start', sa.Date(), nullable=False),
        sa.Column('end', sa.Date(), nullable=False),
        sa.Column('path', sa.String(length=255), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['schedule_id'], ['stats_schedules.id'],
                                name=op.f('fk_stats_deliveries_schedule_id_stats_schedules')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stats_deliveries')),
        sa.UniqueConstraint('schedule_id', 'due_on', name='uq_stats_deliveries_schedule_day'),
    )
    with op.batch_alter_table('stats_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stats_deliveries_schedule_id'), ['schedule_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stats_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stats_deliveries_schedule_id'))
    op.drop_table('stats_deliveries')
    with op.batch_alter_table('stats_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stats_schedules_region_code'))
    op.drop_table('stats_schedules')
