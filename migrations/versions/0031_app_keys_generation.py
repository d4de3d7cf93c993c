"""apps: the generation of apps' keys, a token every change of an app or its keys replaces, so that
each process may cache the keys and still see a revocation from its next request on

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-04 17:00:00.000000
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'app_keys_generation',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_app_keys_generation')),
    )
    op.bulk_insert(table, [{'id': 1, 'token': secrets.token_hex(16)}])


def downgrade() -> None:
    op.drop_table('app_keys_generation')
