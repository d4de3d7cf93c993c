"""departments (standard 4-digit codes) and terminals of institutions; institutions.updated_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 22:47:52.954494
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('departments',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('code', sa.String(length=4), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_departments_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departments')),
    sa.UniqueConstraint('institution_id', 'code', name='uq_departments_institution_code')
    )
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_departments_institution_id'), ['institution_id'], unique=False)

    op.create_table('terminals',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=False),
    sa.Column('type_code', sa.String(length=2), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('department_id', sa.String(length=24), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('retired_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_terminals_department_id_departments')),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_terminals_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_terminals')),
    sa.UniqueConstraint('institution_id', 'terminal_id', name='uq_terminals_institution_terminal')
    )
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_terminals_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_terminals_institution_id'), ['institution_id'], unique=False)

    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('updated_at')

    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_terminals_institution_id'))
        batch_op.drop_index(batch_op.f('ix_terminals_department_id'))

    op.drop_table('terminals')
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_departments_institution_id'))

    op.drop_table('departments')
