"""appointments: a booking carries the family doctor's referral it was made for

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-03 13:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0019'
branch_labels = None
depends_on = None

_COLUMNS = (('referral_id', 24), ('referral_team_id', 24), ('referral_from_institution_id', 24),
            ('referral_reason', 200))


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) on both databases: no table rebuild, so SQLite keeps the
    # partial unique index of one live booking per person and session exactly as it is.
    for name, length in _COLUMNS:
        op.add_column('appt_bookings', sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    # DROP COLUMN without a rebuild (SQLite 3.35 and later), for the same reason.
    for name, _ in reversed(_COLUMNS):
        op.drop_column('appt_bookings', name)
