"""Queries of the analytical store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Date, String, cast, delete, func, insert, literal, literal_column, or_, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from ..kit import dialect
from .models import CubeCell, MonthCubeCell, ReportDelivery, ReportSchedule, StatEvent, Watermark


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
MONTH_CUBE_KEY = ["source", "dimension", "month", "kind", "to_status", "region_code", "value"]
Cube = type[CubeCell] | type[MonthCubeCell]  # the daily cube, or the month cube


def _key(cells: Cube) -> list[str]:
    return CUBE_KEY if cells is CubeCell else MONTH_CUBE_KEY


def _when(cells: Cube):  # noqa: ANN202
    """The cube's time column: the day, or the month (its first day)."""
    return cells.day if cells is CubeCell else cells.month


def add_to_cube(session: Session, cells: Sequence[dict], table: Cube = CubeCell) -> None:
    """Add each cell's ``count`` to the cube (a new cell starts at it)."""
    if cells:
        session.execute(dialect.insert_or_add(table.__table__, _key(table), "count", dialect.name(session)), list(cells))


def _month_of(session: Session, day: ColumnElement) -> ColumnElement:
    """The first day of ``day``'s month, as a date (SQLite keeps dates as text)."""
    if dialect.name(session) == "sqlite":
        return type_coerce(func.date(day, literal_column("'start of month'")), Date)
    return cast(func.date_trunc(literal_column("'month'"), day), Date)


def prefecture_of(region_code: ColumnElement) -> ColumnElement:
    """A region code's prefecture: its first four digits and "00" (510104 -> 510100)."""
    return func.substr(region_code, 1, 4).concat(literal_column("'00'"))


def _cube_of_events(session: Session, table: Cube, dimension: str, column: ColumnElement | None):  # noqa: ANN202
    """The cube's cells of one dimension, grouped from the events (what the cube must hold)."""
    # Constants as SQL text, not bound parameters: PostgreSQL must see the grouped expressions as the
    # selected ones (two binds of "" are two different expressions to it).
    empty = literal_column("''")
    value = func.coalesce(cast(column, String), empty) if column is not None else empty
    to_status = func.coalesce(StatEvent.to_status, empty)
    when = StatEvent.day if table is CubeCell else _month_of(session, StatEvent.day)
    region = StatEvent.region_code if table is CubeCell else prefecture_of(StatEvent.region_code)
    keys = [StatEvent.source, when, StatEvent.kind, to_status, region]
    return (select(StatEvent.source, literal(dimension, String), when, StatEvent.kind, to_status, region, value,
                   func.count())
            .group_by(*keys, *([value] if column is not None else [])))  # a constant is not grouped by


def rebuild_cube(session: Session, dimensions: dict[str, ColumnElement | None]) -> None:
    """Empty both cubes and fill them again from the events (after a bulk load that bypassed the refresh)."""
    for table in (CubeCell, MonthCubeCell):
        session.execute(delete(table))
        columns = [getattr(table, name) for name in _key(table)] + [table.count]
        for dimension, column in dimensions.items():
            session.execute(insert(table).from_select(columns, _cube_of_events(session, table, dimension, column)))


def last_event_id(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(StatEvent.id), 0))))


def clear_cube(session: Session, days_by_province: dict[str, Sequence[date]], table: Cube = CubeCell) -> None:
    """Remove the cube's cells of the given days (months: their first days) of each province (two-digit
    region prefix)."""
    when = _when(table)
    for province, days in sorted(days_by_province.items()):
        for at in range(0, len(days), 500):
            session.execute(delete(table).where(func.substr(table.region_code, 1, 2) == province,
                                                when.in_(days[at:at + 500])))


def put_cube(session: Session, cells: Sequence[dict], table: Cube = CubeCell) -> None:
    """Insert cells (not there yet: :func:`clear_cube` first); streamed by ``COPY`` on PostgreSQL."""
    if not cells:
        return
    key = _key(table)
    if dialect.can_copy(session.connection()):
        time = key[2]
        payload = "".join(f"{c['source']}\t{c['dimension']}\t{c[time].isoformat()}\t{c['kind']}\t{c['to_status']}\t"
                          f"{c['region_code']}\t{c['value']}\t{c['count']}\n" for c in cells)
        dialect.copy_rows(session.connection(), table.__tablename__, key + ["count"], payload.encode())
    else:
        session.execute(insert(table), list(cells))


def cube_differences(session: Session, dimensions: dict[str, ColumnElement | None],
                     table: Cube = CubeCell) -> dict[tuple, tuple[int, int]]:
    """The cells where the cube and the events disagree: key -> (in the cube, from the events)."""
    held = {tuple(row[:-1]): int(row[-1]) for row in session.execute(select(
        *(getattr(table, name) for name in _key(table)), table.count))}
    due: dict[tuple, int] = {}
    for dimension, column in dimensions.items():
        due.update({tuple(row[:-1]): int(row[-1])
                    for row in session.execute(_cube_of_events(session, table, dimension, column))})
    return {key: (held.get(key, 0), due.get(key, 0)) for key in held.keys() | due.keys()
            if held.get(key, 0) != due.get(key, 0)}


def cube_counts(session: Session, conditions: list[ColumnElement], dimension: ColumnElement | None,
                start: date, end: date, table: Cube = CubeCell) -> list[tuple]:
    """(day, dimension value, count) from the cube: :func:`counts`'s answer without the events (from
    the month cube: (month's first day, value, count) of the months whose first day is in the window)."""
    when = _when(table)
    columns = [when] + ([dimension] if dimension is not None else [])
    query = (select(*columns, func.sum(table.count)).where(*conditions, when >= start, when <= end)
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


def cube_status_deltas(session: Session, conditions: list[ColumnElement], start: date | None, end: date,
                       table: Cube = CubeCell) -> list[tuple]:
    """:func:`status_deltas` from a cube, from ``start`` (None: the beginning) to ``end``: the entries
    into a status are the total cells' to-status, the exits the ``from_status`` dimension's values (by
    month's first day, from the month cube)."""
    when = _when(table)
    window = [when <= end] + ([when >= start] if start is not None else [])
    out = []
    for dimension, column, sign in (("", table.to_status, 1), ("from_status", table.value, -1)):
        query = (select(when, column, func.sum(table.count))
                 .where(*conditions, *window, table.dimension == dimension, column != "").group_by(when, column))
        out.extend((day, status, sign * int(n)) for day, status, n in session.execute(query))
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
