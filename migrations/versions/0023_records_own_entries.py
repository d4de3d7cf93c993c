"""health records: the resident's own entries on the basic health record's first page

A blood type, an allergy, a condition, an operation or a family-history item the resident adds
themselves (docs/records.md, "The basic health record"); what it says is sealed.

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db

revision = '0023'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('records_own_entries',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('body_sealed', sa.Text(), nullable=False),
    sa.CheckConstraint("kind IN ('blood_type', 'allergy', 'condition', 'operation', 'family_history')",
                       name=op.f('ck_records_own_entries_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records_own_entries'))
    )
    with op.batch_alter_table('records_own_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_own_entries_person_id'), ['person_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('records_own_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_own_entries_person_id'))

    op.drop_table('records_own_entries')
