"""cards: the status is one of the card statuses (a check constraint)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 21:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# The values of ehc.cards.models.CardStatus as of this revision (a migration never follows the code).
_STATUSES = "status IN ('pending_review', 'rejected', 'normal', 'lost', 'cancelled')"
_PREFIX_INDEX = 'uq_cards_ehc_id_prefix'


def _recreate_prefix_index() -> None:
    # On SQLite a batch alteration copies the table and reflects its indexes back, but an index on an
    # expression is not reflected: put the 80-bit prefix index (0009) back.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f'DROP INDEX IF EXISTS {_PREFIX_INDEX}')
        op.create_index(_PREFIX_INDEX, 'cards', [sa.text('substr(ehc_id, 1, 20)')], unique=True)


def upgrade() -> None:
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.create_check_constraint('status', _STATUSES)
    _recreate_prefix_index()


def downgrade() -> None:
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_cards_status'), type_='check')
    _recreate_prefix_index()
