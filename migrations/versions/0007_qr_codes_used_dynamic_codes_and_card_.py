"""qr codes: used dynamic codes and card uses

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 00:29:32.655240
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('card_uses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ehc_id', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('scene', sa.String(length=7), nullable=False),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('terminal_id', sa.String(length=32), nullable=True),
    sa.Column('department', sa.String(length=8), nullable=True),
    sa.Column('code_type', sa.Integer(), nullable=False),
    sa.Column('actor_kind', sa.String(length=12), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('operator', sa.String(length=64), nullable=True),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_uses'))
    )
    with op.batch_alter_table('card_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_uses_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_uses_ehc_id'), ['ehc_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_uses_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_uses_person_id'), ['person_id'], unique=False)

    op.create_table('qr_used_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key_id', sa.String(length=7), nullable=False),
    sa.Column('nonce', sa.String(length=16), nullable=False),
    sa.Column('expires_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qr_used_codes')),
    sa.UniqueConstraint('key_id', 'nonce', name='uq_qr_used_codes_key_nonce')
    )
    with op.batch_alter_table('qr_used_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qr_used_codes_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('qr_used_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qr_used_codes_expires_at'))

    op.drop_table('qr_used_codes')
    with op.batch_alter_table('card_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_uses_person_id'))
        batch_op.drop_index(batch_op.f('ix_card_uses_institution_id'))
        batch_op.drop_index(batch_op.f('ix_card_uses_ehc_id'))
        batch_op.drop_index(batch_op.f('ix_card_uses_at'))

    op.drop_table('card_uses')
