"""statistics: a scheduled report may be sent on to the upper-level platform; each delivery records
its sending (when sent, attempts, the next try, the last error, the receiver's receipt)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stats_schedules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_upstream', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('stats_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('send_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_send_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('send_error', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('receipt', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stats_deliveries', schema=None) as batch_op:
        for column in ('receipt', 'send_error', 'next_send_at', 'send_attempts', 'sent_at'):
            batch_op.drop_column(column)
    with op.batch_alter_table('stats_schedules', schema=None) as batch_op:
        batch_op.drop_column('send_upstream')
