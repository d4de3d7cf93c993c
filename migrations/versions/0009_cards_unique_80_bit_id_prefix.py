"""cards: unique 80-bit id prefix

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 03:39:25.460152
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # QR codes name a card by the first 80 bits of its id (docs/qr-format.md §5.2): unique, on both
    # databases (substr is SQLite's and PostgreSQL's). Existing cards were drawn with that check.
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.create_index('uq_cards_ehc_id_prefix', [sa.text('substr(ehc_id, 1, 20)')], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_index('uq_cards_ehc_id_prefix')
