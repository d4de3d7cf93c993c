"""family doctors: policies, teams, packages, conditions, contracts, services, referrals

Revision ID: 0017
Revises: 0018
Create Date: 2026-12-03 07:50:20.528956
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0017'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('fd_conditions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=True),
    sa.Column('recorded_by', sa.String(length=64), nullable=True),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('recorded_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_conditions')),
    sa.UniqueConstraint('person_id', 'code', name='uq_fd_conditions_person_code')
    )
    with op.batch_alter_table('fd_conditions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_conditions_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_conditions_region_code'), ['region_code'], unique=False)

    op.create_table('fd_packages',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('price_public_fen', sa.Integer(), nullable=False),
    sa.Column('price_insurance_fen', sa.Integer(), nullable=False),
    sa.Column('price_resident_fen', sa.Integer(), nullable=False),
    sa.Column('eligibility', sa.JSON(), nullable=False),
    sa.Column('services', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('replaces', sa.String(length=24), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('price_public_fen >= 0 AND price_insurance_fen >= 0 AND price_resident_fen >= 0', name=op.f('ck_fd_packages_prices_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_packages'))
    )
    with op.batch_alter_table('fd_packages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_packages_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_packages_region_code'), ['region_code'], unique=False)

    op.create_table('fd_policies',
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('capacity_per_lead', sa.Integer(), nullable=False),
    sa.Column('term_days', sa.Integer(), nullable=False),
    sa.Column('reminder_days', sa.Integer(), nullable=False),
    sa.Column('change_reasons', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('capacity_per_lead > 0', name=op.f('ck_fd_policies_capacity_positive')),
    sa.CheckConstraint('term_days > 0 AND reminder_days >= 0', name=op.f('ck_fd_policies_days_positive')),
    sa.PrimaryKeyConstraint('region_code', name=op.f('pk_fd_policies'))
    )
    op.create_table('fd_teams',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('lead_staff_id', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_fd_teams_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_teams'))
    )
    with op.batch_alter_table('fd_teams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_teams_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_teams_lead_staff_id'), ['lead_staff_id'], unique=False)

    op.create_table('fd_contracts',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('active_person_id', sa.String(length=32), nullable=True),
    sa.Column('team_id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('lead_staff_id', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('package_ids', sa.JSON(), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('services_due', sa.Integer(), nullable=False),
    sa.Column('price_public_fen', sa.Integer(), nullable=False),
    sa.Column('price_insurance_fen', sa.Integer(), nullable=False),
    sa.Column('price_resident_fen', sa.Integer(), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=True),
    sa.Column('birth_year', sa.Integer(), nullable=True),
    sa.Column('sex', sa.String(length=1), nullable=False),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('signed_by_kind', sa.String(length=12), nullable=False),
    sa.Column('signed_by', sa.String(length=64), nullable=True),
    sa.Column('consent_use_id', sa.Integer(), nullable=True),
    sa.Column('previous_id', sa.String(length=24), nullable=True),
    sa.Column('reminded_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'ended', 'terminated', 'renewed', 'changed')", name=op.f('ck_fd_contracts_status')),
    sa.CheckConstraint('price_public_fen >= 0 AND price_insurance_fen >= 0 AND price_resident_fen >= 0', name=op.f('ck_fd_contracts_prices_not_negative')),
    sa.ForeignKeyConstraint(['team_id'], ['fd_teams.id'], name=op.f('fk_fd_contracts_team_id_fd_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_contracts')),
    sa.UniqueConstraint('active_person_id', name=op.f('uq_fd_contracts_active_person_id'))
    )
    with op.batch_alter_table('fd_contracts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_contracts_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_contracts_lead_staff_id'), ['lead_staff_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_contracts_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_contracts_previous_id'), ['previous_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_contracts_region_code'), ['region_code'], unique=False)
        batch_op.create_index('ix_fd_contracts_status_end', ['status', 'end_date'], unique=False)
        batch_op.create_index('ix_fd_contracts_team_status', ['team_id', 'status'], unique=False)

    op.create_table('fd_team_areas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('team_id', sa.String(length=24), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['fd_teams.id'], name=op.f('fk_fd_team_areas_team_id_fd_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_team_areas')),
    sa.UniqueConstraint('team_id', 'region_code', name='uq_fd_team_areas_team_region')
    )
    with op.batch_alter_table('fd_team_areas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_team_areas_region_code'), ['region_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_team_areas_team_id'), ['team_id'], unique=False)

    op.create_table('fd_team_members',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('team_id', sa.String(length=24), nullable=False),
    sa.Column('staff_id', sa.String(length=24), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('added_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['fd_teams.id'], name=op.f('fk_fd_team_members_team_id_fd_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_team_members')),
    sa.UniqueConstraint('team_id', 'staff_id', name='uq_fd_team_members_team_staff')
    )
    with op.batch_alter_table('fd_team_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_team_members_staff_id'), ['staff_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_team_members_team_id'), ['team_id'], unique=False)

    op.create_table('fd_contract_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('contract_id', sa.String(length=24), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor_kind', sa.String(length=12), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['fd_contracts.id'], name=op.f('fk_fd_contract_events_contract_id_fd_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_contract_events'))
    )
    with op.batch_alter_table('fd_contract_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_contract_events_contract_id'), ['contract_id'], unique=False)

    op.create_table('fd_deliveries',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('contract_id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('team_id', sa.String(length=24), nullable=False),
    sa.Column('service_code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('performed_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('staff_id', sa.String(length=24), nullable=True),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('card_use_id', sa.Integer(), nullable=True),
    sa.Column('systolic_mmhg', sa.Integer(), nullable=True),
    sa.Column('diastolic_mmhg', sa.Integer(), nullable=True),
    sa.Column('glucose_mmol_x10', sa.Integer(), nullable=True),
    sa.Column('weight_kg_x10', sa.Integer(), nullable=True),
    sa.Column('notes_sealed', sa.Text(), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['fd_contracts.id'], name=op.f('fk_fd_deliveries_contract_id_fd_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_deliveries'))
    )
    with op.batch_alter_table('fd_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_fd_deliveries_contract_service', ['contract_id', 'service_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_deliveries_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_deliveries_team_id'), ['team_id'], unique=False)

    op.create_table('fd_referrals',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('contract_id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('team_id', sa.String(length=24), nullable=False),
    sa.Column('staff_id', sa.String(length=24), nullable=True),
    sa.Column('to_institution_id', sa.String(length=24), nullable=False),
    sa.Column('department_code', sa.String(length=4), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('booking_ref', sa.String(length=64), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('booked_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contract_id'], ['fd_contracts.id'], name=op.f('fk_fd_referrals_contract_id_fd_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fd_referrals'))
    )
    with op.batch_alter_table('fd_referrals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fd_referrals_contract_id'), ['contract_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_referrals_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fd_referrals_team_id'), ['team_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('fd_referrals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_referrals_team_id'))
        batch_op.drop_index(batch_op.f('ix_fd_referrals_person_id'))
        batch_op.drop_index(batch_op.f('ix_fd_referrals_contract_id'))

    op.drop_table('fd_referrals')
    with op.batch_alter_table('fd_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_deliveries_team_id'))
        batch_op.drop_index(batch_op.f('ix_fd_deliveries_person_id'))
        batch_op.drop_index('ix_fd_deliveries_contract_service')

    op.drop_table('fd_deliveries')
    with op.batch_alter_table('fd_contract_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_contract_events_contract_id'))

    op.drop_table('fd_contract_events')
    with op.batch_alter_table('fd_team_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_team_members_team_id'))
        batch_op.drop_index(batch_op.f('ix_fd_team_members_staff_id'))

    op.drop_table('fd_team_members')
    with op.batch_alter_table('fd_team_areas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_team_areas_team_id'))
        batch_op.drop_index(batch_op.f('ix_fd_team_areas_region_code'))

    op.drop_table('fd_team_areas')
    with op.batch_alter_table('fd_contracts', schema=None) as batch_op:
        batch_op.drop_index('ix_fd_contracts_team_status')
        batch_op.drop_index('ix_fd_contracts_status_end')
        batch_op.drop_index(batch_op.f('ix_fd_contracts_region_code'))
        batch_op.drop_index(batch_op.f('ix_fd_contracts_previous_id'))
        batch_op.drop_index(batch_op.f('ix_fd_contracts_person_id'))
        batch_op.drop_index(batch_op.f('ix_fd_contracts_lead_staff_id'))
        batch_op.drop_index(batch_op.f('ix_fd_contracts_institution_id'))

    op.drop_table('fd_contracts')
    with op.batch_alter_table('fd_teams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_teams_lead_staff_id'))
        batch_op.drop_index(batch_op.f('ix_fd_teams_institution_id'))

    op.drop_table('fd_teams')
    op.drop_table('fd_policies')
    with op.batch_alter_table('fd_packages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_packages_region_code'))
        batch_op.drop_index(batch_op.f('ix_fd_packages_institution_id'))

    op.drop_table('fd_packages')
    with op.batch_alter_table('fd_conditions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fd_conditions_region_code'))
        batch_op.drop_index(batch_op.f('ix_fd_conditions_person_id'))

    op.drop_table('fd_conditions')
    
