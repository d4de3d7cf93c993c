"""The analytical store: one row per event of a domain, reduced to what a statistic needs.

No card id, no person id, no name: a row says what happened (``source``/``kind``), when (China day
and hour), where (region, institution, terminal type), through which channel, and the coarse profile
of the person it concerned (age band, sex, document type). ``(source, source_id)`` is unique, so
feeding an event twice stores it once.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class StatEvent(Base):
    __tablename__ = "stats_events"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="uq_stats_events_source"),
        Index("ix_stats_events_source_day", "source", "day"),
        Index("ix_stats_events_region", "region_code"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # card | card_use | (later domains' names)
    source_id: Mapped[int] = mapped_column(BigInteger)  # the event's row id in its domain
    kind: Mapped[str] = mapped_column(String(24))  # e.g. register, report_lost, reissue, cancel, use
    day: Mapped[date] = mapped_column(Date)  # China Standard Time
    hour: Mapped[int] = mapped_column(SmallInteger)  # 0-23, China Standard Time
    region_code: Mapped[str] = mapped_column(String(6), default="000000")  # GB/T 2260; 000000 unknown
    institution_id: Mapped[str | None] = mapped_column(String(24))
    channel: Mapped[str | None] = mapped_column(String(4))
    care_step: Mapped[str | None] = mapped_column(String(7))
    terminal_type: Mapped[str | None] = mapped_column(String(2))
    document_type: Mapped[str | None] = mapped_column(String(2))
    age_band: Mapped[str | None] = mapped_column(String(5))
    sex: Mapped[str | None] = mapped_column(String(1))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))


class CubeCell(Base):
    """The daily cube: for each day, source, kind, to-status and county (region code), the count of the
    store's events per value of one breakdown (``dimension``; "" for none, where ``value`` is "" too).
    Each event adds 1 to one cell of every dimension. Maintained by the refresh in the transaction
    that stores the events, so it never disagrees with them; the flow indicators read it instead of
    grouping the events. A missing value (NULL in the store) is "" here; ``hour`` is its text."""

    __tablename__ = "stats_cube"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    to_status: Mapped[str] = mapped_column(String(16), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    value: Mapped[str] = mapped_column(String(24), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class MonthCubeCell(Base):
    """The month cube: the daily cube folded to months and prefectures. For each month (its first
    day), source, kind, to-status and prefecture (the region code's first four digits and "00"), the
    count of the store's events per value of one breakdown, with the daily cube's nine dimensions.
    Maintained with the daily cube, in the same transactions; a province-year's question by month
    reads a few thousand of these cells instead of hundreds of thousands of county-days."""

    __tablename__ = "stats_month_cube"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # the month's first day
    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    to_status: Mapped[str] = mapped_column(String(16), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)  # the prefecture, e.g. 510100
    value: Mapped[str] = mapped_column(String(24), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class Watermark(Base):
    """How far the store has read each source: the highest source row id taken in."""

    __tablename__ = "stats_watermarks"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    events: Mapped[int] = mapped_column(BigInteger, default=0)  # rows stored from this source in all
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ReportSchedule(Base):
    """A report an operator asked for on a schedule: the national daily card-use report, or one
    indicator's table, for a region (None: the whole country) fixed when it was made, within the
    maker's scope. ``status``: active | paused | deleted (a deleted schedule keeps its deliveries'
    rows for the audit trail, but runs no more and is no longer listed)."""

    __tablename__ = "stats_schedules"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    report: Mapped[str] = mapped_column(String(16))  # daily_report | table
    indicator: Mapped[str | None] = mapped_column(String(24))  # a table's
    breakdown: Mapped[str | None] = mapped_column(String(24))
    period: Mapped[str | None] = mapped_column(String(8))  # day | week | month
    region_code: Mapped[str | None] = mapped_column(String(6), index=True)  # None: the whole country
    frequency: Mapped[str] = mapped_column(String(8))  # daily | weekly
    weekday: Mapped[int | None] = mapped_column(SmallInteger)  # weekly: 0 Monday ... 6 Sunday
    format: Mapped[str] = mapped_column(String(8))  # csv | parquet
    status: Mapped[str] = mapped_column(String(8), default="active")
    # Each file also goes to the upper-level platform (EHC_UPSTREAM_URL; statistics/sending.py).
    send_upstream: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(64))  # the staff account's id
    created_on: Mapped[date] = mapped_column(Date)  # China day: the first day it may be due
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ReportDelivery(Base):
    """A file a schedule produced for one due day. ``(schedule_id, due_on)`` is unique: two runners
    at once, or a rerun, make one file."""

    __tablename__ = "stats_deliveries"
    __table_args__ = (UniqueConstraint("schedule_id", "due_on", name="uq_stats_deliveries_schedule_day"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("stats_schedules.id"), index=True)
    due_on: Mapped[date] = mapped_column(Date)  # the China day it was due
    start: Mapped[date] = mapped_column(Date)  # the days it covers
    end: Mapped[date] = mapped_column(Date)
    path: Mapped[str] = mapped_column(String(255))  # under the data directory's reports/
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Sending on to the upper-level platform (its schedule's ``send_upstream``): when it was received,
    # how many tries, when the next may start (a try under way holds it as a lease), the last error.
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    send_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_send_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    send_error: Mapped[str | None] = mapped_column(String(200))
    receipt: Mapped[str | None] = mapped_column(String(64))  # what the receiver called it
