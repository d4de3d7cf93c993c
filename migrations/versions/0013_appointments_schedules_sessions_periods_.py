"""appointments: templates, closures, sessions, periods with quotas, bookings, events, waitlist, policies

Revision ID: 0013
Revises: 0017
Create Date: 2026-12-03 07:48:41.396296
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ehc.db


revision = '0013'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appt_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('booking_id', sa.String(length=24), nullable=True),
    sa.Column('session_id', sa.String(length=24), nullable=True),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('from_status', sa.String(length=10), nullable=True),
    sa.Column('to_status', sa.String(length=10), nullable=True),
    sa.Column('period_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('actor_kind', sa.String(length=12), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('operator', sa.String(length=64), nullable=True),
    sa.Column('institution_id', sa.String(length=24), nullable=True),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appt_events'))
    )
    with op.batch_alter_table('appt_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appt_events_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appt_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appt_events_booking_id'), ['booking_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appt_events_session_id'), ['session_id'], unique=False)

    op.create_table('appt_policies',
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('per_department_per_day', sa.Integer(), nullable=True),
    sa.Column('outstanding', sa.Integer(), nullable=True),
    sa.Column('cancellations', sa.Integer(), nullable=True),
    sa.Column('cancellation_window_days', sa.Integer(), nullable=True),
    sa.Column('no_shows', sa.Integer(), nullable=True),
    sa.Column('no_show_window_days', sa.Integer(), nullable=True),
    sa.Column('no_show_suspension_days', sa.Integer(), nullable=True),
    sa.Column('hold_minutes', sa.Integer(), nullable=True),
    sa.Column('cutoff_minutes', sa.Integer(), nullable=True),
    sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('region_code', name=op.f('pk_appt_policies'))
    )
    op.create_table('appt_closures',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('department_id', sa.String(length=24), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_appt_closures_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appt_closures')),
    sa.UniqueConstraint('institution_id', 'department_id', 'day', name='uq_appt_closures_day')
    )
    with op.batch_alter_table('appt_closures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appt_closures_institution_id'), ['institution_id'], unique=False)

    op.create_table('appt_sessions',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('department_id', sa.String(length=24), nullable=False),
    sa.Column('department_code', sa.String(length=4), nullable=False),
    sa.Column('doctor', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('starts_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('category', sa.String(length=8), nullable=False),
    sa.Column('fee_fen', sa.Integer(), nullable=False),
    sa.Column('period_minutes', sa.Integer(), nullable=False),
    sa.Column('referral_release_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('template_id', sa.String(length=24), nullable=True),
    sa.Column('suspended_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'suspended')", name=op.f('ck_appt_sessions_status')),
    sa.CheckConstraint('fee_fen >= 0', name=op.f('ck_appt_sessions_fee')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_appt_sessions_department_id_departments')),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_appt_sessions_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appt_sessions')),
    sa.UniqueConstraint('department_id', 'doctor', 'starts_at', name='uq_appt_sessions_slot')
    )
    with op.batch_alter_table('appt_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appt_sessions_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index('ix_appt_sessions_search', ['department_code', 'day', 'institution_id'], unique=False)
        batch_op.create_index('ix_appt_sessions_day', ['institution_id', 'day'], unique=False)

    op.create_table('appt_templates',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('department_id', sa.String(length=24), nullable=False),
    sa.Column('department_code', sa.String(length=4), nullable=False),
    sa.Column('doctor', sa.String(length=64), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start', sa.String(length=5), nullable=False),
    sa.Column('end', sa.String(length=5), nullable=False),
    sa.Column('period_minutes', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=8), nullable=False),
    sa.Column('fee_fen', sa.Integer(), nullable=False),
    sa.Column('quota_window', sa.Integer(), nullable=False),
    sa.Column('quota_kiosk', sa.Integer(), nullable=False),
    sa.Column('quota_online', sa.Integer(), nullable=False),
    sa.Column('quota_referral', sa.Integer(), nullable=False),
    sa.Column('referral_release_hours', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('fee_fen >= 0', name=op.f('ck_appt_templates_fee')),
    sa.CheckConstraint('period_minutes > 0', name=op.f('ck_appt_templates_period')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_appt_templates_weekday')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_appt_templates_department_id_departments')),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_appt_templates_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appt_templates'))
    )
    with op.batch_alter_table('appt_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appt_templates_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appt_templates_institution_id'), ['institution_id'], unique=False)

    op.create_table('appt_periods',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.String(length=24), nullable=False),
    sa.Column('starts_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('quota_window', sa.Integer(), nullable=False),
    sa.Column('quota_kiosk', sa.Integer(), nullable=False),
    sa.Column('quota_online', sa.Integer(), nullable=False),
    sa.Column('quota_referral', sa.Integer(), nullable=False),
    sa.Column('used_window', sa.Integer(), nullable=False),
    sa.Column('used_kiosk', sa.Integer(), nullable=False),
    sa.Column('used_online', sa.Integer(), nullable=False),
    sa.Column('used_referral', sa.Integer(), nullable=False),
    sa.CheckConstraint('used_kiosk >= 0 AND used_kiosk <= quota_kiosk', name=op.f('ck_appt_periods_kiosk_within_quota')),
    sa.CheckConstraint('used_online >= 0 AND used_online <= quota_online', name=op.f('ck_appt_periods_online_within_quota')),
    sa.CheckConstraint('used_referral >= 0 AND used_referral <= quota_referral', name=op.f('ck_appt_periods_referral_within_quota')),
    sa.CheckConstraint('used_window >= 0 AND used_window <= quota_window', name=op.f('ck_appt_periods_window_within_quota')),
    sa.ForeignKeyConstraint(['session_id'], ['appt_sessions.id'], name=op.f('fk_appt_periods_session_id_appt_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appt_periods'))
    )
    with op.batch_alter_table('appt_periods', schema=None) as batch_op:
        batch_op.create_index('ix_appt_periods_session', ['session_id', 'starts_at'], unique=False)

    op.create_table('appt_bookings',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('reference', sa.String(length=12), nullable=False),
    sa.Column('session_id', sa.String(length=24), nullable=False),
    sa.Column('period_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('institution_id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('ehc_id', sa.String(length=64), nullable=False),
    sa.Column('booked_by', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('pool', sa.String(length=8), nullable=False),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=True),
    sa.Column('hold_expires_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('from_waitlist', sa.Boolean(), nullable=False),
    sa.Column('reminded_at', ehc.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('held', 'booked', 'arrived', 'cancelled', 'expired', 'no_show')", name=op.f('ck_appt_bookings_status')),
    sa.ForeignKeyConstraint(['period_id'], ['appt_periods.id'], name=op.f('fk_appt_bookings_period_id_appt_periods')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_appt_bookings_person_id_persons')),
    sa.ForeignKeyConstraint(['session_id'], ['appt_sessions.id'], name=op.f('fk_appt_bookings_session_id_appt_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appt_bookings')),
    sa.UniqueConstraint('reference', name=op.f('uq_appt_bookings_reference'))
    )
    with op.batch_alter_table('appt_bookings', schema=None) as batch_op:
        batch_op.create_index('ix_appt_bookings_due', ['status', 'hold_expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appt_bookings_institution_id'), ['institution_id'], unique=False)
        batch_op.create_index('ix_appt_bookings_period', ['period_id', 'status'], unique=False)
        batch_op.create_index('ix_appt_bookings_person', ['person_id', 'status'], unique=False)
        batch_op.create_index('uq_appt_bookings_one_per_session', ['session_id', 'person_id'], unique=True, sqlite_where=sa.text("status IN ('held', 'booked', 'arrived')"), postgresql_where=sa.text("status IN ('held', 'booked', 'arrived')"))

    op.create_table('appt_waitlist',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('period_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('ehc_id', sa.String(length=64), nullable=False),
    sa.Column('booked_by', sa.String(length=32), nullable=True),
    sa.Column('channel', sa.String(length=4), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('booking_id', sa.String(length=24), nullable=True),
    sa.Column('created_at', ehc.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('waiting', 'offered', 'booked', 'expired', 'left')", name=op.f('ck_appt_waitlist_status')),
    sa.ForeignKeyConstraint(['period_id'], ['appt_periods.id'], name=op.f('fk_appt_waitlist_period_id_appt_periods')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_appt_waitlist_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appt_waitlist'))
    )
    with op.batch_alter_table('appt_waitlist', schema=None) as batch_op:
        batch_op.create_index('ix_appt_waitlist_line', ['period_id', 'status', 'id'], unique=False)
        batch_op.create_index('uq_appt_waitlist_one_per_period', ['period_id', 'person_id'], unique=True, sqlite_where=sa.text("status IN ('waiting', 'offered')"), postgresql_where=sa.text("status IN ('waiting', 'offered')"))



def downgrade() -> None:
    with op.batch_alter_table('appt_waitlist', schema=None) as batch_op:
        batch_op.drop_index('uq_appt_waitlist_one_per_period', sqlite_where=sa.text("status IN ('waiting', 'offered')"), postgresql_where=sa.text("status IN ('waiting', 'offered')"))
        batch_op.drop_index('ix_appt_waitlist_line')

    op.drop_table('appt_waitlist')
    with op.batch_alter_table('appt_bookings', schema=None) as batch_op:
        batch_op.drop_index('uq_appt_bookings_one_per_session', sqlite_where=sa.text("status IN ('held', 'booked', 'arrived')"), postgresql_where=sa.text("status IN ('held', 'booked', 'arrived')"))
        batch_op.drop_index('ix_appt_bookings_person')
        batch_op.drop_index('ix_appt_bookings_period')
        batch_op.drop_index(batch_op.f('ix_appt_bookings_institution_id'))
        batch_op.drop_index('ix_appt_bookings_due')

    op.drop_table('appt_bookings')
    with op.batch_alter_table('appt_periods', schema=None) as batch_op:
        batch_op.drop_index('ix_appt_periods_session')

    op.drop_table('appt_periods')
    with op.batch_alter_table('appt_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appt_templates_institution_id'))
        batch_op.drop_index(batch_op.f('ix_appt_templates_department_id'))

    op.drop_table('appt_templates')
    with op.batch_alter_table('appt_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_appt_sessions_search')
        batch_op.drop_index('ix_appt_sessions_day')
        batch_op.drop_index(batch_op.f('ix_appt_sessions_institution_id'))

    op.drop_table('appt_sessions')
    with op.batch_alter_table('appt_closures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appt_closures_institution_id'))

    op.drop_table('appt_closures')
    op.drop_table('appt_policies')
    with op.batch_alter_table('appt_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appt_events_session_id'))
        batch_op.drop_index(batch_op.f('ix_appt_events_booking_id'))
        batch_op.drop_index(batch_op.f('ix_appt_events_at'))
        batch_op.drop_index(batch_op.f('ix_appt_events_actor_id'))

    op.drop_table('appt_events')
