"""institution apps, their SM2 public keys and the replay store of used nonces (signed machine API)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 23:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('institution_apps',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_institution_apps_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_institution_apps'))
    )
    with op.batch_alter_table('institution_apps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_institution_apps_institution_id'), ['institution_id'], unique=False)

    op.create_table('app_keys',
    sa.Column('app_id', sa.String(length=16), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('public_key_pem', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_by', sa.String(length=64), nullable=True),
    sa.Column('revoked_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['institution_apps.id'], name=op.f('fk_app_keys_app_id_institution_apps')),
    sa.PrimaryKeyConstraint('app_id', 'key_id', name=op.f('pk_app_keys')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_app_keys_fingerprint'))
    )

    op.create_table('app_nonces',
    sa.Column('app_id', sa.String(length=16), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('expires_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('app_id', 'nonce', name=op.f('pk_app_nonces'))
    )
    with op.batch_alter_table('app_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_app_nonces_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('app_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_app_nonces_expires_at'))

    op.drop_table('app_nonces')
    op.drop_table('app_keys')
    with op.batch_alter_table('institution_apps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_institution_apps_institution_id'))

    op.drop_table('institution_apps')
