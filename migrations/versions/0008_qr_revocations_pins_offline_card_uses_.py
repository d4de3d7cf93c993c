"""qr revocations pins offline card uses; mpi match keys reviews merges link jobs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 02:20:52.324388
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing card uses were all online, recorded when they happened (server defaults below).
    op.create_table('card_pins',
    sa.Column('ehc_id', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=128), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ehc_id', name=op.f('pk_card_pins'))
    )
    op.create_table('mpi_link_jobs',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('backend', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('linked', sa.Integer(), nullable=False),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.Column('unmatched', sa.Integer(), nullable=False),
    sa.Column('output_dir', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mpi_link_jobs'))
    )
    with op.batch_alter_table('mpi_link_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mpi_link_jobs_institution_id'), ['institution_id'], unique=False)

    op.create_table('qr_revocations',
    sa.Column('serial', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('rid', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=6), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('serial', name=op.f('pk_qr_revocations'))
    )
    with op.batch_alter_table('qr_revocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qr_revocations_rid'), ['rid'], unique=False)

    op.create_table('mpi_match_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_mpi_match_keys_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mpi_match_keys'))
    )
    with op.batch_alter_table('mpi_match_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mpi_match_keys_key'), ['key'], unique=False)
        batch_op.create_index(batch_op.f('ix_mpi_match_keys_person_id'), ['person_id'], unique=False)

    op.create_table('mpi_merges',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source_person_id', sa.String(length=32), nullable=False),
    sa.Column('target_person_id', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor_kind', sa.String(length=12), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('review_id', sa.Integer(), nullable=True),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('undone_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('undone_by', sa.String(length=64), nullable=True),
    sa.Column('undo_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['source_person_id'], ['persons.id'], name=op.f('fk_mpi_merges_source_person_id_persons')),
    sa.ForeignKeyConstraint(['target_person_id'], ['persons.id'], name=op.f('fk_mpi_merges_target_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mpi_merges'))
    )
    with op.batch_alter_table('mpi_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mpi_merges_source_person_id'), ['source_person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mpi_merges_target_person_id'), ['target_person_id'], unique=False)

    op.create_table('mpi_reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('link_job_id', sa.String(length=24), nullable=True),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('left_person_id', sa.String(length=32), nullable=True),
    sa.Column('record_sealed', sa.Text(), nullable=True),
    sa.Column('right_person_id', sa.String(length=32), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('grade', sa.String(length=10), nullable=False),
    sa.Column('comparison', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['left_person_id'], ['persons.id'], name=op.f('fk_mpi_reviews_left_person_id_persons')),
    sa.ForeignKeyConstraint(['right_person_id'], ['persons.id'], name=op.f('fk_mpi_reviews_right_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mpi_reviews'))
    )
    with op.batch_alter_table('mpi_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mpi_reviews_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_mpi_reviews_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mpi_reviews_left_person_id'), ['left_person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mpi_reviews_link_job_id'), ['link_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mpi_reviews_right_person_id'), ['right_person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mpi_reviews_status'), ['status'], unique=False)

    op.create_table('mpi_merge_moves',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('merge_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['merge_id'], ['mpi_merges.id'], name=op.f('fk_mpi_merge_moves_merge_id_mpi_merges')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mpi_merge_moves'))
    )
    with op.batch_alter_table('mpi_merge_moves', schema=None) as batch_op:
        batch_op.create_index('ix_mpi_merge_moves_merge_kind', ['merge_id', 'kind'], unique=False)

    with op.batch_alter_table('card_uses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column('nonce', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('offline', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('recorded_at', ehc.db.UtcDateTime(timezone=True), nullable=False,
                                      server_default=sa.func.current_timestamp()))
        batch_op.add_column(sa.Column('replay', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('region_code', sa.String(length=6), nullable=True))
        batch_op.create_index('ix_card_uses_key_nonce', ['key_id', 'nonce'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_uses_region_code'), ['region_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('card_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_uses_region_code'))
        batch_op.drop_index('ix_card_uses_key_nonce')
        batch_op.drop_column('region_code')
        batch_op.drop_column('replay')
        batch_op.drop_column('recorded_at')
        batch_op.drop_column('offline')
        batch_op.drop_column('nonce')
        batch_op.drop_column('key_id')

    with op.batch_alter_table('mpi_merge_moves', schema=None) as batch_op:
        batch_op.drop_index('ix_mpi_merge_moves_merge_kind')

    op.drop_table('mpi_merge_moves')
    with op.batch_alter_table('mpi_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mpi_reviews_status'))
        batch_op.drop_index(batch_op.f('ix_mpi_reviews_right_person_id'))
        batch_op.drop_index(batch_op.f('ix_mpi_reviews_link_job_id'))
        batch_op.drop_index(batch_op.f('ix_mpi_reviews_left_person_id'))
        batch_op.drop_index(batch_op.f('ix_mpi_reviews_institution_id'))
        batch_op.drop_index(batch_op.f('ix_mpi_reviews_created_at'))

    op.drop_table('mpi_reviews')
    with op.batch_alter_table('mpi_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mpi_merges_target_person_id'))
        batch_op.drop_index(batch_op.f('ix_mpi_merges_source_person_id'))

    op.drop_table('mpi_merges')
    with op.batch_alter_table('mpi_match_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mpi_match_keys_person_id'))
        batch_op.drop_index(batch_op.f('ix_mpi_match_keys_key'))

    op.drop_table('mpi_match_keys')
    with op.batch_alter_table('qr_revocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qr_revocations_rid'))

    op.drop_table('qr_revocations')
    with op.batch_alter_table('mpi_link_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mpi_link_jobs_institution_id'))

    op.drop_table('mpi_link_jobs')
    op.drop_table('card_pins')
