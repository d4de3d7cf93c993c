"""health records: versions, consents and break-glass reads

Every version of every FHIR resource a hospital publishes (sealed body, the person's random id, or the
blind index of a hospital number still waiting to be bound), the resident's consent grants and denials,
and emergency (break-glass) reads with their sealed reason.

Revision ID: 0020
Revises: 0013
Create Date: 2026-12-03 08:26:16.486284
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0020'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('records_break_glass',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('actor_kind', sa.String(length=12), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('reason_sealed', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records_break_glass'))
    )
    with op.batch_alter_table('records_break_glass', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_break_glass_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_break_glass_person_id'), ['person_id'], unique=False)

    op.create_table('records_consents',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('effect', sa.String(length=5), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('department', sa.String(length=8), nullable=True),
    sa.Column('categories', sa.String(length=300), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('starts_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("effect IN ('allow', 'deny')", name=op.f('ck_records_consents_effect')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records_consents'))
    )
    with op.batch_alter_table('records_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_consents_person_id'), ['person_id'], unique=False)

    op.create_table('records_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resource_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('pending_index', sa.String(length=64), nullable=True),
    sa.Column('sensitivity', sa.String(length=16), nullable=True),
    sa.Column('effective_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.Column('replaces', sa.String(length=32), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('body_sealed', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records_versions')),
    sa.UniqueConstraint('digest', name='uq_records_versions_digest'),
    sa.UniqueConstraint('resource_id', 'version', name='uq_records_versions_resource_version')
    )
    with op.batch_alter_table('records_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_versions_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_versions_pending_index'), ['pending_index'], unique=False)
        batch_op.create_index('ix_records_versions_person_current', ['person_id', 'current', 'effective_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('records_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_records_versions_person_current')
        batch_op.drop_index(batch_op.f('ix_records_versions_pending_index'))
        batch_op.drop_index(batch_op.f('ix_records_versions_institution_id'))

    op.drop_table('records_versions')
    with op.batch_alter_table('records_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_consents_person_id'))

    op.drop_table('records_consents')
    with op.batch_alter_table('records_break_glass', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_break_glass_person_id'))
        batch_op.drop_index(batch_op.f('ix_records_break_glass_at'))

    op.drop_table('records_break_glass')
