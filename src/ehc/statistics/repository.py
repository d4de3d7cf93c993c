"""Queries of the analytical store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import String, cast, delete, func, insert, literal, literal_column, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from ..kit import dialect
from .models import CubeCell, ReportDelivery, ReportSchedule, StatEvent, Watermark


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


CUBE_KEY = ["source", "dimension", "day", "kind", "to_status", "region_code", "value"]


def add_to_cube(session: Session, cells: Sequence[dict]) -> None:
    """Add each cell's ``count`` to the cube (a new cell starts at it)."""
    if cells:
        session.execute(dialect.insert_or_add(CubeCell.__table__, CUBE_KEY, "count", dialect.name(session)), list(cells))


def _cube_of_events(dimension: str, column: ColumnElement | None):  # noqa: ANN202
    """The cube's cells of one dimension, grouped from the events (what the cube must hold)."""
    # Constants as SQL text, not bound parameters: PostgreSQL must see the grouped expressions as the
    # selected ones (two binds of "" are two different expressions to it).
    empty = literal_column("''")
    value = func.coalesce(cast(column, String), empty) if column is not None else empty
    to_status = func.coalesce(StatEvent.to_status, empty)
    keys = [StatEvent.source, StatEvent.day, StatEvent.kind, to_status, StatEvent.region_code]
    return (select(StatEvent.source, literal(dimension, String), StatEvent.day, StatEvent.kind, to_status,
                   StatEvent.region_code, value, func.count())
            .group_by(*keys, *([value] if column is not None else [])))  # a constant is not grouped by


def rebuild_cube(session: Session, dimensions: dict[str, ColumnElement | None]) -> None:
    """Empty the cube and fill it again from the events (after a bulk load that bypassed the refresh)."""
    session.execute(delete(CubeCell))
    columns = [CubeCell.source, CubeCell.dimension, CubeCell.day, CubeCell.kind, CubeCell.to_status,
               CubeCell.region_code, CubeCell.value, CubeCell.count]
    for dimension, column in dimensions.items():
        session.execute(insert(CubeCell).from_select(columns, _cube_of_events(dimension, column)))


def last_event_id(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(StatEvent.id), 0))))


def clear_cube(session: Session, days_by_province: dict[str, Sequence[date]]) -> None:
    """Remove the cube's cells of the given days of each province (two-digit region prefix)."""
    for province, days in sorted(days_by_province.items()):
        for at in range(0, len(days), 500):
            session.execute(delete(CubeCell).where(func.substr(CubeCell.region_code, 1, 2) == province,
                                                   CubeCell.day.in_(days[at:at + 500])))


def put_cube(session: Session, cells: Sequence[dict]) -> None:
    """Insert cells (not there yet: :func:`clear_cube` first); streamed by ``COPY`` on PostgreSQL."""
    if not cells:
        return
    if dialect.can_copy(session.connection()):
        payload = "".join(f"{c['source']}\t{c['dimension']}\t{c['day'].isoformat()}\t{c['kind']}\t{c['to_status']}\t"
                          f"{c['region_code']}\t{c['value']}\t{c['count']}\n" for c in cells)
        dialect.copy_rows(session.connection(), CubeCell.__tablename__, CUBE_KEY + ["count"], payload.encode())
    else:
        session.execute(insert(CubeCell), list(cells))


def cube_differences(session: Session, dimensions: dict[str, ColumnElement | None]) -> dict[tuple, tuple[int, int]]:
    """The cells where the cube and the events disagree: key -> (in the cube, from the events)."""
    held = {tuple(row[:-1]): int(row[-1]) for row in session.execute(select(
        CubeCell.source, CubeCell.dimension, CubeCell.day, CubeCell.kind, CubeCell.to_status, CubeCell.region_code,
        CubeCell.value, CubeCell.count))}
    due: dict[tuple, int] = {}
    for dimension, column in dimensions.items():
        due.update({tuple(row[:-1]): int(row[-1]) for row in session.execute(_cube_of_events(dimension, column))})
    return {key: (held.get(key, 0), due.get(key, 0)) for key in held.keys() | due.keys()
            if held.get(key, 0) != due.get(key, 0)}


def cube_counts(session: Session, conditions: list[ColumnElement], dimension: ColumnElement | None,
                start: date, end: date) -> list[tuple]:
    """(day, dimension value, count) from the cube: :func:`counts`'s answer without the events."""
    columns = [CubeCell.day] + ([dimension] if dimension is not None else [])
    query = (select(*columns, func.sum(CubeCell.count)).where(*conditions, CubeCell.day >= start, CubeCell.day <= end)
             .group_by(*columns))
    # A sum of BIGINT is NUMERIC on PostgreSQL: back to int.
    return [(row[0], row[1] if dimension is not None else None, int(row[-1])) for row in session.execute(query)]


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


def deliveries_to_send(session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of the files waiting to go upward whose next try may start at ``now``, oldest first."""
    return list(session.scalars(
        select(ReportDelivery.id).join(ReportSchedule, ReportSchedule.id == ReportDelivery.schedule_id)
        .where(ReportSchedule.send_upstream.is_(True), ReportDelivery.sent_at.is_(None),
               or_(ReportDelivery.next_send_at.is_(None), ReportDelivery.next_send_at <= now))
        .order_by(ReportDelivery.id).limit(limit)))
