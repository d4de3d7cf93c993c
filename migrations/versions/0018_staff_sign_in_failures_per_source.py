"""staff sign-in: wrong passwords counted per account and source, and told to the owner

Wrong passwords used to lock a staff account for everyone after five tries. They now slow down only
the source that sends them (``staff_sign_in_failures``); the account keeps the count since its last
sign-in and when the latest was, and what its owner was told at that sign-in.

Revision ID: 0018
Revises: 0012
Create Date: 2026-12-03 08:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db

revision = '0018'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'staff_sign_in_failures',
        sa.Column('account_id', sa.String(length=24), nullable=False),
        sa.Column('source_index', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('wait_until', ehc.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column('last_failed_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('account_id', 'source_index', name=op.f('pk_staff_sign_in_failures')),
    )
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_failed_at', ehc.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('failures_before_sign_in', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('failure_last_before_sign_in', ehc.db.UtcDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.alter_column('failures_before_sign_in', server_default=None, existing_type=sa.Integer(),
                              existing_nullable=False)
    # The old lock meant "nobody may sign in"; the column now means "every source waits": a lock
    # still running at the upgrade would turn into a quarter of an hour's crowd wait, so clear it.
    op.execute("UPDATE staff_accounts SET locked_until = NULL")


def downgrade() -> None:
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.drop_column('failure_last_before_sign_in')
        batch_op.drop_column('failures_before_sign_in')
        batch_op.drop_column('last_failed_at')
    op.drop_table('staff_sign_in_failures')
