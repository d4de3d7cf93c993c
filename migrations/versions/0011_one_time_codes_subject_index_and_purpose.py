"""one-time codes: subject_index and purpose

The codes' table holds sign-in codes (the subject is a phone) and the second factor of printed QR
codes (the subject is a card) since the second factor was added; its ``phone_index`` column is
renamed ``subject_index`` and a ``purpose`` column says which kind a row is. Rows already there are
labelled by their subject: a phone's blind index known to the accounts or the SMS outbox is a
sign-in, any other subject a second factor (codes live 5 minutes; the labels only describe them).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 20:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('resident_otp_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resident_otp_codes_phone_index'))
        batch_op.alter_column('phone_index', new_column_name='subject_index',
                              existing_type=sa.String(length=64), existing_nullable=False)
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), nullable=False, server_default='sign_in'))

    op.execute(
        "UPDATE resident_otp_codes SET purpose = 'second_factor' "
        "WHERE subject_index NOT IN (SELECT phone_index FROM resident_accounts) "
        "AND subject_index NOT IN (SELECT phone_index FROM sms_outbox)"
    )

    with op.batch_alter_table('resident_otp_codes', schema=None) as batch_op:
        batch_op.alter_column('purpose', server_default=None, existing_type=sa.String(length=16),
                              existing_nullable=False)
        batch_op.create_index(batch_op.f('ix_resident_otp_codes_subject_index'), ['subject_index'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('resident_otp_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resident_otp_codes_subject_index'))
        batch_op.drop_column('purpose')
        batch_op.alter_column('subject_index', new_column_name='phone_index',
                              existing_type=sa.String(length=64), existing_nullable=False)

    with op.batch_alter_table('resident_otp_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resident_otp_codes_phone_index'), ['phone_index'], unique=False)
