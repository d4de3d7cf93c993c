"""appointments: booking events carry a keyed digest of the request's address (bursts per source),
and a region may set how many holds one address may start in a burst

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 14:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('appt_policies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holds_per_address_burst', sa.Integer(), nullable=True))
    with op.batch_alter_table('appt_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_index', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_appt_events_source_index'), ['source_index'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('appt_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appt_events_source_index'))
        batch_op.drop_column('source_index')
    with op.batch_alter_table('appt_policies', schema=None) as batch_op:
        batch_op.drop_column('holds_per_address_burst')
