"""mpi: identifier unbinds with their reason

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 03:40:55.708870
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mpi_identifier_unbinds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('system', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor_kind', sa.String(length=12), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_mpi_identifier_unbinds_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mpi_identifier_unbinds'))
    )
    with op.batch_alter_table('mpi_identifier_unbinds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mpi_identifier_unbinds_person_id'), ['person_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('mpi_identifier_unbinds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mpi_identifier_unbinds_person_id'))

    op.drop_table('mpi_identifier_unbinds')
