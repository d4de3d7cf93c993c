"""Appointment tables: weekly templates and closures (holidays), sessions (号源) and their timed
periods (分时段) with per-source quotas, bookings and their events, the waitlist, regional policy.

Limits live in the database: a period's counters never pass their quotas (check constraints, and
the service takes a place with one conditional ``UPDATE``), a person holds at most one live booking
per session and one live waitlist place per period (partial unique indexes).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow

# Where a booking's place comes from (docs/appointments.md "Quotas").
POOLS = ("window", "kiosk", "online", "referral")
CATEGORIES = ("general", "expert", "special")  # 普通 / 专家 / 特需
LIVE = ("held", "booked", "arrived")  # a booking that occupies a place
BOOKING_STATUSES = ("held", "booked", "arrived", "cancelled", "expired", "no_show")
_LIVE_SQL = "status IN ('held', 'booked', 'arrived')"
_WAITING_SQL = "status IN ('waiting', 'offered')"


class Template(Base):
    """A weekly template: every ``weekday`` (0 Monday) a session from ``start`` to ``end`` China time."""

    __tablename__ = "appt_templates"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("fee_fen >= 0", name="fee"),
        CheckConstraint("period_minutes > 0", name="period"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"), index=True)
    department_code: Mapped[str] = mapped_column(String(4))
    doctor: Mapped[str] = mapped_column(String(64), default="")  # "" for the department's own session
    weekday: Mapped[int] = mapped_column(Integer)
    start: Mapped[str] = mapped_column(String(5))  # HH:MM China time
    end: Mapped[str] = mapped_column(String(5))
    period_minutes: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(8))
    fee_fen: Mapped[int] = mapped_column(Integer)
    quota_window: Mapped[int] = mapped_column(Integer, default=0)
    quota_kiosk: Mapped[int] = mapped_column(Integer, default=0)
    quota_online: Mapped[int] = mapped_column(Integer, default=0)
    quota_referral: Mapped[int] = mapped_column(Integer, default=0)
    referral_release_hours: Mapped[int] = mapped_column(Integer, default=24)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Closure(Base):
    """A day an institution (or one department) publishes nothing from its templates: a holiday."""

    __tablename__ = "appt_closures"
    __table_args__ = (UniqueConstraint("institution_id", "department_id", "day", name="uq_appt_closures_day"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    department_id: Mapped[str] = mapped_column(String(24), default="")  # "" for the whole institution
    day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ClinicSession(Base):
    """A session (号源) of a department or one of its doctors on one day, cut into periods."""

    __tablename__ = "appt_sessions"
    __table_args__ = (
        UniqueConstraint("department_id", "doctor", "starts_at", name="uq_appt_sessions_slot"),
        CheckConstraint("status IN ('open', 'suspended')", name="status"),
        CheckConstraint("fee_fen >= 0", name="fee"),
        Index("ix_appt_sessions_search", "department_code", "day", "institution_id"),
        Index("ix_appt_sessions_day", "institution_id", "day"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    department_code: Mapped[str] = mapped_column(String(4))  # the department's standard code, for search
    doctor: Mapped[str] = mapped_column(String(64), default="")
    day: Mapped[date] = mapped_column(Date)  # China calendar day
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    category: Mapped[str] = mapped_column(String(8))
    fee_fen: Mapped[int] = mapped_column(Integer)
    period_minutes: Mapped[int] = mapped_column(Integer)
    referral_release_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(10), default="open")
    template_id: Mapped[str | None] = mapped_column(String(24))
    suspended_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Period(Base):
    """A timed period (分时段) of a session: its places per source and how many are taken."""

    __tablename__ = "appt_periods"
    __table_args__ = tuple(
        CheckConstraint(f"used_{p} >= 0 AND used_{p} <= quota_{p}", name=f"{p}_within_quota") for p in POOLS
    ) + (Index("ix_appt_periods_session", "session_id", "starts_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("appt_sessions.id"))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    quota_window: Mapped[int] = mapped_column(Integer, default=0)
    quota_kiosk: Mapped[int] = mapped_column(Integer, default=0)
    quota_online: Mapped[int] = mapped_column(Integer, default=0)
    quota_referral: Mapped[int] = mapped_column(Integer, default=0)
    used_window: Mapped[int] = mapped_column(Integer, default=0)
    used_kiosk: Mapped[int] = mapped_column(Integer, default=0)
    used_online: Mapped[int] = mapped_column(Integer, default=0)
    used_referral: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def capacity(self) -> int:
        return sum(getattr(self, f"quota_{p}") for p in POOLS)

    @property
    def taken(self) -> int:
        return sum(getattr(self, f"used_{p}") for p in POOLS)


class Booking(Base):
    """One place, bound to the person behind a card (master index id), never to a typed name."""

    __tablename__ = "appt_bookings"
    __table_args__ = (
        CheckConstraint("status IN ({})".format(", ".join(f"'{s}'" for s in BOOKING_STATUSES)), name="status"),
        # One live booking per person per session, under any race (the database's own rule).
        Index("uq_appt_bookings_one_per_session", "session_id", "person_id", unique=True,
              sqlite_where=text(_LIVE_SQL), postgresql_where=text(_LIVE_SQL)),
        Index("ix_appt_bookings_person", "person_id", "status"),
        Index("ix_appt_bookings_period", "period_id", "status"),
        Index("ix_appt_bookings_due", "status", "hold_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("appt_sessions.id"))
    period_id: Mapped[int] = mapped_column(ForeignKey("appt_periods.id"))
    institution_id: Mapped[str] = mapped_column(String(24), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    ehc_id: Mapped[str] = mapped_column(String(64))
    booked_by: Mapped[str | None] = mapped_column(String(32))  # the guardian's person id, when not self
    status: Mapped[str] = mapped_column(String(10))
    pool: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(4))
    terminal_id: Mapped[str | None] = mapped_column(String(32))
    hold_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    from_waitlist: Mapped[bool] = mapped_column(Boolean, default=False)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A family doctor's referral the booking carries (``book_referral``): which referral, from which
    # team and centre, and why, so the receiving department and the resident see it on the booking.
    referral_id: Mapped[str | None] = mapped_column(String(24))
    referral_team_id: Mapped[str | None] = mapped_column(String(24))
    referral_from_institution_id: Mapped[str | None] = mapped_column(String(24))
    referral_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Event(Base):
    """Every change of a booking or a session: who, when, through which channel, and why."""

    __tablename__ = "appt_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    booking_id: Mapped[str | None] = mapped_column(String(24), index=True)
    session_id: Mapped[str | None] = mapped_column(String(24), index=True)
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(10))
    to_status: Mapped[str | None] = mapped_column(String(10))
    period_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    operator: Mapped[str | None] = mapped_column(String(64))
    institution_id: Mapped[str | None] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(4))
    reason: Mapped[str | None] = mapped_column(String(300))
    # Keyed digest of the address the request came from (never the address): bursts per source.
    source_index: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class WaitlistEntry(Base):
    """A place in line (候补) for a full period; the first in line is offered a freed place."""

    __tablename__ = "appt_waitlist"
    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'offered', 'booked', 'expired', 'left')", name="status"),
        Index("uq_appt_waitlist_one_per_period", "period_id", "person_id", unique=True,
              sqlite_where=text(_WAITING_SQL), postgresql_where=text(_WAITING_SQL)),
        Index("ix_appt_waitlist_line", "period_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("appt_periods.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    ehc_id: Mapped[str] = mapped_column(String(64))
    booked_by: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(10), default="waiting")
    booking_id: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Policy(Base):
    """A region's booking rules (GB/T 2260 code, 2, 4 or 6 digits); unset columns take the defaults."""

    __tablename__ = "appt_policies"

    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    per_department_per_day: Mapped[int | None] = mapped_column(Integer)
    outstanding: Mapped[int | None] = mapped_column(Integer)
    cancellations: Mapped[int | None] = mapped_column(Integer)
    cancellation_window_days: Mapped[int | None] = mapped_column(Integer)
    no_shows: Mapped[int | None] = mapped_column(Integer)
    no_show_window_days: Mapped[int | None] = mapped_column(Integer)
    no_show_suspension_days: Mapped[int | None] = mapped_column(Integer)
    hold_minutes: Mapped[int | None] = mapped_column(Integer)
    cutoff_minutes: Mapped[int | None] = mapped_column(Integer)
    holds_per_address_burst: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
