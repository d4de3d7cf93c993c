"""accounts: a staff member's department (a code of their institution's departments), so that a health
records grant for a department admits only that department's staff

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03 18:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('department_code', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.drop_column('department_code')
