"""Queries of the analytical store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from .models import ReportDelivery, ReportSchedule, StatEvent, Watermark


def watermark(session: Session, source: str) -> Watermark:
    mark = session.get(Watermark, source)
    if mark is None:
        mark = Watermark(source=source, last_id=0, events=0)
        session.add(mark)
        session.flush()
    return mark


def watermarks(session: Session) -> list[Watermark]:
    return list(session.scalars(select(Watermark).order_by(Watermark.source)))


def stored_ids(session: Session, source: str, low: int, high: int) -> set[int]:
    return set(session.scalars(select(StatEvent.source_id).where(
        StatEvent.source == source, StatEvent.source_id >= low, StatEvent.source_id <= high)))


def add_events(session: Session, rows: Sequence[dict]) -> None:
    if rows:
        session.execute(insert(StatEvent), list(rows))


def counts(session: Session, conditions: list[ColumnElement], dimension: ColumnElement | None,
           start: date, end: date) -> list[tuple]:
    """(day, dimension value, count) of the events matching ``conditions`` from ``start`` to ``end``."""
    columns = [StatEvent.day] + ([dimension] if dimension is not None else [])
    query = (select(*columns, func.count()).where(*conditions, StatEvent.day >= start, StatEvent.day <= end)
             .group_by(*columns))
    return [(row[0], row[1] if dimension is not None else None, row[-1]) for row in session.execute(query)]


def status_deltas(session: Session, conditions: list[ColumnElement], end: date) -> list[tuple]:
    """(day, status, +n / -n): cards entering a status, and leaving it, by day up to ``end``."""
    out = []
    for column, sign in ((StatEvent.to_status, 1), (StatEvent.from_status, -1)):
        query = (select(StatEvent.day, column, func.count()).where(*conditions, StatEvent.day <= end,
                                                                   column.is_not(None))
                 .group_by(StatEvent.day, column))
        out.extend((day, status, sign * n) for day, status, n in session.execute(query))
    return out


def institutions_present(session: Session, conditions: list[ColumnElement], start: date, end: date) -> list[tuple]:
    """(institution, care step, channel, terminal type, count) of uses in the days: the daily report."""
    columns = (StatEvent.institution_id, StatEvent.region_code, StatEvent.care_step, StatEvent.channel,
               StatEvent.terminal_type)
    return list(session.execute(
        select(*columns, func.count()).where(*conditions, StatEvent.day >= start, StatEvent.day <= end)
        .group_by(*columns).order_by(*columns)))


def events_after(session: Session, after_id: int, limit: int) -> list[tuple]:
    """(id, then the exported columns) of the rows after ``after_id``, in id order."""
    return [tuple(row) for row in session.execute(
        select(StatEvent.id, StatEvent.source, StatEvent.kind, StatEvent.day, StatEvent.hour, StatEvent.region_code,
               StatEvent.institution_id, StatEvent.channel, StatEvent.care_step, StatEvent.terminal_type,
               StatEvent.document_type, StatEvent.age_band, StatEvent.sex, StatEvent.from_status,
               StatEvent.to_status).where(StatEvent.id > after_id).order_by(StatEvent.id).limit(limit))]


# -- report schedules ------------------------------------------------------------------------------

def add_schedule(session: Session, schedule: ReportSchedule) -> ReportSchedule:
    session.add(schedule)
    session.flush()
    return schedule


def schedule(session: Session, schedule_id: int) -> ReportSchedule | None:
    return session.get(ReportSchedule, schedule_id)


def schedules(session: Session, *, statuses: Sequence[str]) -> list[ReportSchedule]:
    return list(session.scalars(select(ReportSchedule).where(ReportSchedule.status.in_(statuses))
                                .order_by(ReportSchedule.id)))


def delivery(session: Session, schedule_id: int, due_on: date) -> ReportDelivery | None:
    return session.scalar(select(ReportDelivery).where(ReportDelivery.schedule_id == schedule_id,
                                                       ReportDelivery.due_on == due_on))


def delivered_days(session: Session, schedule_id: int, since: date) -> set[date]:
    return set(session.scalars(select(ReportDelivery.due_on).where(ReportDelivery.schedule_id == schedule_id,
                                                                   ReportDelivery.due_on >= since)))


def deliveries(session: Session, schedule_ids: Sequence[int], limit: int) -> list[ReportDelivery]:
    if not schedule_ids:
        return []
    return list(session.scalars(select(ReportDelivery).where(ReportDelivery.schedule_id.in_(schedule_ids))
                                .order_by(ReportDelivery.due_on.desc(), ReportDelivery.id.desc()).limit(limit)))


def delivery_by_id(session: Session, delivery_id: int) -> ReportDelivery | None:
    return session.get(ReportDelivery, delivery_id)


def add_delivery(session: Session, row: ReportDelivery) -> ReportDelivery:
    session.add(row)
    session.flush()
    return row
