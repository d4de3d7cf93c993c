"""audit trail: hash-chained access events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 22:50:06.775821
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('actor_kind', sa.String(length=12), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('actor_role', sa.String(length=64), nullable=True),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('operator', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_events_seq'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index('ix_audit_events_person_seq', ['person_id', 'seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_purpose'), ['purpose'], unique=False)
        batch_op.create_index('ix_audit_events_unchained', ['id'], unique=False, postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_unchained', postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))
        batch_op.drop_index(batch_op.f('ix_audit_events_purpose'))
        batch_op.drop_index('ix_audit_events_person_seq')
        batch_op.drop_index(batch_op.f('ix_audit_events_institution_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_actor_id'))

    op.drop_table('audit_events')
