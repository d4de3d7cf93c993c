"""card import jobs and rejections (`ehc cards import`: resumable registry migration)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:42:48.095971
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('card_import_jobs',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('file_size', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('already_registered', sa.Integer(), nullable=False),
    sa.Column('pending_review', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('operator', sa.String(length=64), nullable=True),
    sa.Column('started_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_import_jobs')),
    sa.UniqueConstraint('digest', name=op.f('uq_card_import_jobs_digest'))
    )
    op.create_table('card_import_rejections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=24), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('document_type', sa.String(length=8), nullable=True),
    sa.Column('document_masked', sa.String(length=64), nullable=True),
    sa.Column('problem', sa.String(length=48), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('field', sa.String(length=40), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['card_import_jobs.id'], name=op.f('fk_card_import_rejections_job_id_card_import_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_import_rejections'))
    )
    with op.batch_alter_table('card_import_rejections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_import_rejections_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('card_import_rejections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_import_rejections_job_id'))

    op.drop_table('card_import_rejections')
    op.drop_table('card_import_jobs')
