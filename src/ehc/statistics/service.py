"""Statistics: the analytical store's pipeline and the console's queries (docs/statistics.md).

**Pipeline.** A domain whose events count offers a *source*: a function of its ``service``
``read(session, after_id, limit) -> list[dict]`` giving its events with a row id above ``after_id``
in id order, each a dict with ``id`` and ``at`` (UTC) and any of ``kind``, ``channel``,
``institution_id``, ``region_code``, ``care_step``, ``terminal_id``, ``person_id``, ``from_status``,
``to_status``. ``ehc.wiring`` registers it once: ``statistics.register_source("card_use",
qr.statistics_events)``. :func:`refresh` reads every source from its watermark, turns each event into
a row of ``stats_events`` without personal data (the person id only serves to look up an age band,
the sex and the document type in the master index; the terminal id a terminal type; the
institution a region) and moves the watermark, in one transaction per batch. Feeding is idempotent:
``(source, source_id)`` is unique and already-stored ids are skipped, so a crash between batches, a
second refresh running at the same time or a rerun stores every event once. Each run reads again the
last ``OVERLAP`` ids below the watermark, so an event whose transaction committed after a later one
(ids are handed out before commit) is still taken in.

**Queries.** :func:`table` answers region × period × indicator (with one breakdown) for the caller's
region and below, every answer small-number protected (``suppression``) and audited.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..audit import service as audit
from ..family_doctors import service as family_doctors
from ..institutions import service as institutions
from ..kit import dialect
from ..kit.clock import CHINA, utcnow
from ..kit.context import Actor, Ctx
from ..kit.errors import Forbidden, Invalid, NotFound, Problem, field_error
from ..kit.regions import region_prefix, region_problem, region_within
from ..mpi import service as mpi
from ..records import service as records
from . import aggregation, sending
from . import repository as repo
from .models import CubeCell, MonthCubeCell, ReportDelivery, ReportSchedule, StatEvent
from .suppression import Protected, protect

log = logging.getLogger("ehc.statistics")

BATCH = 5_000
OVERLAP = 1_000  # ids below the watermark read again at every run (late commits)
UNKNOWN_REGION = "000000"
REFRESH_LOCK = "ehc.statistics.refresh"

# -- sources ---------------------------------------------------------------------------------------

Reader = Callable[[Session, int, int], list[dict]]


@dataclass(frozen=True)
class Source:
    name: str
    read: Reader


_sources: dict[str, Source] = {}


def register_source(name: str, read: Reader) -> None:
    """Add a domain's events to the pipeline (called from ``ehc.wiring``, once per process)."""
    if len(name) > 16:
        raise ValueError("a statistics source's name is at most 16 characters")
    _sources[name] = Source(name, read)


def sources() -> list[str]:
    return sorted(_sources)


# -- refresh ---------------------------------------------------------------------------------------

AGE_BANDS = ((0, 6, "0-6"), (7, 17, "7-17"), (18, 44, "18-44"), (45, 64, "45-64"), (65, 200, "65+"))


def age_band(birth_year: int | None, on: date) -> str | None:
    if birth_year is None:
        return None
    age = on.year - birth_year
    for low, high, label in AGE_BANDS:
        if low <= age <= high:
            return label
    return None


def _rows(session: Session, source: str, facts: list[dict]) -> list[dict]:
    """The store's rows for a source's events: coarse facts only."""
    people = mpi.statistics_profiles(session, [f["person_id"] for f in facts if f.get("person_id")])
    institution_ids = sorted({f["institution_id"] for f in facts if f.get("institution_id")})
    found = institutions.institutions_by_id(session, institution_ids) if institution_ids else {}
    terminals = institutions.terminal_types(session, institution_ids) if any(f.get("terminal_id") for f in facts) else {}
    rows = []
    for fact in facts:
        at = fact["at"]
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(CHINA)
        sex, birth_year, home_region, document_type = people.get(fact.get("person_id") or "", (None, None, None, None))
        institution = found.get(fact.get("institution_id") or "")
        region = fact.get("region_code") or (institution.region_code if institution else None) or home_region
        rows.append({
            "source": source, "source_id": int(fact["id"]), "kind": fact.get("kind") or source,
            "day": at.date(), "hour": at.hour, "region_code": region or UNKNOWN_REGION,
            "institution_id": fact.get("institution_id"), "channel": fact.get("channel"),
            "care_step": fact.get("care_step"),
            "terminal_type": terminals.get((fact.get("institution_id"), fact.get("terminal_id"))),
            "document_type": document_type, "age_band": age_band(birth_year, at.date()), "sex": sex,
            "from_status": fact.get("from_status"), "to_status": fact.get("to_status"),
        })
    return rows


# The daily cube's breakdowns: dimension -> the store's row key giving its value ("" for none); the
# aggregation job's SQL is built from the same list.
CUBE_DIMENSIONS = aggregation.DIMENSIONS


def cube_cells(rows: list[dict], *, months: bool = False) -> list[dict]:
    """What ``rows`` add to the daily cube (``months``: to the month cube, by month and prefecture): one
    cell per dimension for each, counted together, in key order."""
    counted: Counter[tuple] = Counter()
    for row in rows:
        when = row["day"].replace(day=1) if months else row["day"]
        region = row["region_code"][:4] + "00" if months else row["region_code"]
        for dimension, key in CUBE_DIMENSIONS.items():
            value = "" if key is None or row.get(key) is None else str(row[key])
            counted[(row["source"], dimension, when, row["kind"], row.get("to_status") or "", region, value)] += 1
    names = repo.MONTH_CUBE_KEY if months else repo.CUBE_KEY
    return [dict(zip(names, key, strict=True), count=n) for key, n in sorted(counted.items())]


def _cube_columns() -> dict[str, Any]:
    return {d: (getattr(StatEvent, k) if k else None) for d, k in CUBE_DIMENSIONS.items()}


def rebuild_cube(db: Any) -> None:
    """Fill the daily and the month cube again from the events (after rows were loaded into the store by other means than
    the refresh, e.g. a bulk load). Holds every source's refresh lock, so no refresh adds meanwhile."""
    with db.session() as session:
        for name in sorted(set(_sources) | {row.source for row in repo.watermarks(session)}):
            dialect.serialise(session, f"{REFRESH_LOCK}:{name}")
        repo.rebuild_cube(session, _cube_columns())


def cube_differences(session: Session) -> dict[tuple, tuple[int, int]]:
    """Cells where a cube and the events disagree (none, unless rows were loaded around the refresh):
    (table, key...) -> (in the cube, from the events), for the daily and the month cube."""
    return {(table.__tablename__, *key): counts for table in (CubeCell, MonthCubeCell)
            for key, counts in repo.cube_differences(session, _cube_columns(), table).items()}


@dataclass
class RefreshReport:
    stored: dict[str, int] = field(default_factory=dict)  # new rows by source

    @property
    def total(self) -> int:
        return sum(self.stored.values())


def _start(session: Session, name: str) -> int:
    """Where a run reads a source from: ``OVERLAP`` ids below its watermark (made on first use, under
    the source's lock, so racing first runs make it once)."""
    dialect.serialise(session, f"{REFRESH_LOCK}:{name}")
    return max(0, repo.watermark(session, name).last_id - OVERLAP)


def _feed(session: Session, source: Source, cursor: int, batch: int) -> tuple[int, int, int]:
    """One batch of a source after ``cursor``, in the session's transaction: (events read, rows
    stored, new cursor). Serialised per source; ids already stored are skipped."""
    dialect.serialise(session, f"{REFRESH_LOCK}:{source.name}")
    mark = repo.watermark(session, source.name)
    facts = source.read(session, cursor, batch)
    if not facts:
        return 0, 0, cursor
    ids = [int(f["id"]) for f in facts]
    have = repo.stored_ids(session, source.name, min(ids), max(ids))
    rows = _rows(session, source.name, [f for f in facts if int(f["id"]) not in have])
    repo.add_events(session, rows)
    # The cubes in the same transaction, from the rows just stored and only those: they move with the
    # events, exactly once, and never disagree with them.
    repo.add_to_cube(session, cube_cells(rows))
    repo.add_to_cube(session, cube_cells(rows, months=True), MonthCubeCell)
    mark.last_id = max(mark.last_id, max(ids))
    mark.events += len(rows)
    return len(facts), len(rows), max(ids)


def refresh(db: Any, *, batch: int = BATCH, only: Iterable[str] | None = None) -> RefreshReport:
    """Feed the store from every source, from its watermark on; one transaction per batch, so a
    crash loses at most the batch under way, which the next run reads again."""
    report = RefreshReport()
    for name in sorted(only or _sources):
        with db.session() as session:
            cursor = _start(session, name)
        stored = 0
        while True:
            with db.session() as session:
                read, added, cursor = _feed(session, _sources[name], cursor, batch)
            stored += added
            if read < batch:
                break
        report.stored[name] = stored
    return report


def refresh_now(ctx: Ctx, *, batch: int = BATCH) -> RefreshReport:
    """:func:`refresh` inside the caller's transaction (the API's ``POST /statistics/refresh``)."""
    report = RefreshReport()
    for name, source in sorted(_sources.items()):
        cursor = _start(ctx.session, name)
        stored = 0
        while True:
            read, added, cursor = _feed(ctx.session, source, cursor, batch)
            stored += added
            if read < batch:
                break
        report.stored[name] = stored
    return report


def status(session: Session) -> list[dict]:
    return [{"source": m.source, "last_id": m.last_id, "events": m.events, "updated_at": m.updated_at}
            for m in repo.watermarks(session)]


class Refresher:
    """``ehc serve``'s background feeding of the store, every ``interval`` seconds; after each refresh
    it delivers the scheduled reports that are due (``make_ctx`` given: the runner's context). Before
    each, ``upkeep`` (the sources' own housekeeping on the same clock, such as the card-use table's
    month partitions), whose failure is logged and does not stop the refresh."""

    def __init__(self, db: Any, interval: float, make_ctx: Callable[[Session], Ctx] | None = None,
                 upkeep: Callable[[], object] | None = None) -> None:
        self.db = db
        self.interval = interval
        self.make_ctx = make_ctx
        self.upkeep = upkeep
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ehc-stats-refresh", daemon=True)

    def start(self) -> "Refresher":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.upkeep is not None:
                try:
                    self.upkeep()
                except Exception:  # retried at the next tick
                    log.exception("upkeep before the statistics refresh failed")
            try:
                report = refresh(self.db)
                if report.total:
                    log.info("statistics refresh stored %d events", report.total)
            except Exception:  # a failed run is retried at the next tick; the watermark did not move
                log.exception("statistics refresh failed")
                continue
            if self.make_ctx is None:
                continue
            try:
                done = run_schedules(self.db, self.make_ctx)
                if done.made:
                    log.info("scheduled reports: %d files delivered", len(done.made))
            except Exception:  # retried at the next tick: a due day stays due until its file is made
                log.exception("scheduled reports failed")


def start_refresher(db: Any, interval: float, make_ctx: Callable[[Session], Ctx] | None = None,
                    upkeep: Callable[[], object] | None = None) -> Refresher | None:
    return Refresher(db, interval, make_ctx, upkeep).start() if interval > 0 else None


# -- indicators and breakdowns ---------------------------------------------------------------------

CARD, CARD_USE, BOOKING, FAMILY_DOCTOR, PAYMENT, RECORD, VISIT = (
    "card", "card_use", "booking", "family_doctor", "payment", "record", "visit")

_PEOPLE = ("channel", "age_band", "sex", "institution", "region")  # breakdowns of the later sources

INDICATORS: dict[str, tuple[str, ...]] = {
    # name: the breakdowns it offers
    "cards_issued": ("channel", "document_type", "age_band", "sex", "institution", "region"),
    "cards_lost": ("channel", "document_type", "age_band", "sex", "institution", "region"),
    "cards_reissued": ("channel", "document_type", "age_band", "sex", "institution", "region"),
    "cards_cancelled": ("channel", "document_type", "age_band", "sex", "institution", "region"),
    "cards_by_status": ("status",),
    "card_uses": ("care_step", "channel", "terminal_type", "institution", "hour", "age_band", "sex", "region"),
    "bookings_made": (*_PEOPLE, "hour"),
    "booking_check_ins": (*_PEOPLE, "hour"),
    "booking_no_shows": _PEOPLE,
    "bookings_cancelled": _PEOPLE,
    "waitlist_successes": _PEOPLE,
    "contracts_signed": _PEOPLE,
    "contracts_renewed": _PEOPLE,
    "contracts_ended": _PEOPLE,
    "contracts_by_status": ("status",),
    "follow_ups_delivered": _PEOPLE,
    "check_ups_delivered": _PEOPLE,
    "bills_issued": _PEOPLE,
    "payments_insurance": _PEOPLE,
    "payments_bank": _PEOPLE,
    "payments_reversed": _PEOPLE,
    "refunds_insurance": _PEOPLE,
    "refunds_bank": _PEOPLE,
    "records_published": _PEOPLE,
    "encounters_published": _PEOPLE,
    "documents_published": _PEOPLE,
    "records_corrected": _PEOPLE,
    # "card": made with the card or without it (the event's kind), the share the card is meant to raise.
    "visits": ("card", *_PEOPLE),
}
PERIODS = ("day", "week", "month", "total")
VISIT_KINDS = ("with_card", "without_card")
STATUSES = ("normal", "lost", "pending_review", "cancelled")
CONTRACT_STATUSES = ("active", "ended", "terminated", "renewed", "changed")
# A stock (how many are in each status at the end of each period) rather than a count of events.
STOCKS = {"cards_by_status": STATUSES, "contracts_by_status": CONTRACT_STATUSES}
# The flow indicators of the later sources: (source, the event kinds counted).
_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # A booking is made when it is confirmed (a desk booking is held and confirmed at once).
    "bookings_made": (BOOKING, ("confirm", "waitlist_book")),
    "booking_check_ins": (BOOKING, ("arrive",)),
    "booking_no_shows": (BOOKING, ("no_show",)),
    "bookings_cancelled": (BOOKING, ("cancel", "suspend_cancel", "card_cancel", "merge_cancel")),
    "waitlist_successes": (BOOKING, ("waitlist_book",)),
    # First signings only: a renewal's or a change of team's new contract is not a new resident signed.
    "contracts_signed": (FAMILY_DOCTOR, ("sign",)),
    "contracts_renewed": (FAMILY_DOCTOR, ("renew",)),
    "contracts_ended": (FAMILY_DOCTOR, ("terminate", "expire", "merge")),
    "follow_ups_delivered": (FAMILY_DOCTOR, ("service_follow_up",)),
    "check_ups_delivered": (FAMILY_DOCTOR, ("service_check_up",)),
    # Payments: a bill sent; a settlement's insurance share, its bank share; a reversal (冲正); refunds.
    "bills_issued": (PAYMENT, ("bill",)),
    "payments_insurance": (PAYMENT, ("insurance",)),
    "payments_bank": (PAYMENT, ("bank",)),
    "payments_reversed": (PAYMENT, ("insurance_reversal",)),
    "refunds_insurance": (PAYMENT, ("refund_insurance",)),
    "refunds_bank": (PAYMENT, ("refund_bank",)),
    # Health records: resources hospitals published (first versions), visits among them, documents
    # shared (discharge summaries, imaging reports), and corrections (later versions).
    "records_published": (RECORD, records.RESOURCE_TYPES),  # a first version's kind is its type
    "encounters_published": (RECORD, ("Encounter",)),
    "documents_published": (RECORD, ("DocumentReference",)),
    "records_corrected": (RECORD, ("correction",)),
    # Visits the hospitals reported (Encounters), with the card verified there that day or without.
    "visits": (VISIT, VISIT_KINDS),
}
MAX_DAYS = 400
MAX_DAYS_BY_DAY = 93


def _indicator_conditions(indicator: str, rows: Any = StatEvent) -> list:
    """Which rows count for ``indicator``: of the store (``StatEvent``) or of the cube (``CubeCell``),
    which share the columns used here."""
    if indicator == "card_uses":
        return [rows.source == CARD_USE, rows.kind == "use"]
    if indicator == "cards_by_status":
        return [rows.source == CARD]
    if indicator == "contracts_by_status":
        return [rows.source == FAMILY_DOCTOR]
    if indicator in _KINDS:
        source, kinds = _KINDS[indicator]
        return [rows.source == source, rows.kind.in_(kinds)]
    if indicator == "cards_issued":
        # A card counts as issued when it first becomes normal: at registration, or at approval.
        return [rows.source == CARD, or_(and_(rows.kind == "register", rows.to_status == "normal"),
                                         rows.kind == "approve")]
    kind = {"cards_lost": "report_lost", "cards_reissued": "reissue", "cards_cancelled": "cancel"}[indicator]
    return [rows.source == CARD, rows.kind == kind]


def _dimension(by: str | None, prefix: str):  # noqa: ANN202
    if by is None:
        return None
    if by == "region":
        if len(prefix) >= 6:  # a county: its institutions are the level below
            return StatEvent.institution_id
        return func.substr(StatEvent.region_code, 1, 2 if not prefix else len(prefix) + 2)
    if by == "institution":
        return StatEvent.institution_id
    if by == "card":
        return StatEvent.kind
    return getattr(StatEvent, by)


def _cube_dimension(by: str | None, prefix: str, cells: Any = CubeCell) -> tuple[str, Any]:
    """A cube's dimension for a breakdown, and the column giving its value (as :func:`_dimension`)."""
    if by is None:
        return "", None
    if by == "region":
        if len(prefix) >= 6:  # a county: its institutions are the level below
            return "institution", cells.value
        return "", func.substr(cells.region_code, 1, 2 if not prefix else len(prefix) + 2)
    if by == "card":  # the kind is a key of every cell
        return "", cells.kind
    return by, cells.value


def month_cube_serves(query: Query, prefix: str) -> bool:
    """Whether the month cube (months × prefectures) can answer the question's whole months: by month or
    in total, for the country, a province or a prefecture, by any breakdown but a prefecture's counties."""
    return query.period in ("month", "total") and len(prefix) <= 4 and not (query.by == "region" and len(prefix) == 4)


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def whole_months(start: date, end: date) -> tuple[date, date] | None:
    """The first day of the first whole month in ``start``..``end`` and the last day of the last one;
    None when the window holds no whole month."""
    first = start if start.day == 1 else _next_month(start)
    last = end if (end + timedelta(days=1)).day == 1 else end.replace(day=1) - timedelta(days=1)
    return (first, last) if first < last else None


def _cube_counts(session: Session, query: Query, prefix: str, start: date, end: date,
                 months: bool) -> list[tuple]:
    """(day, value, count) from the cubes: the window's whole months from the month cube when the
    question allows it (each as its first day: the same month and total), the days before and after
    them from the daily cube. Both hold the same events, so the answer is the daily cube's."""
    spans: list[tuple[date, date, Any]] = [(start, end, CubeCell)]
    whole = whole_months(start, end) if months and month_cube_serves(query, prefix) else None
    if whole is not None:
        first, last = whole
        spans = [(start, first - timedelta(days=1), CubeCell), (first, last, MonthCubeCell),
                 (last + timedelta(days=1), end, CubeCell)]
    counted: list[tuple] = []
    for low, high, cells in spans:
        if low > high:
            continue
        conditions = _indicator_conditions(query.indicator, cells)
        if prefix:
            conditions.append(cells.region_code.startswith(prefix, autoescape=True))
        name, dimension = _cube_dimension(query.by, prefix, cells)
        conditions.append(cells.dimension == name)
        counted.extend(repo.cube_counts(session, conditions, dimension, low, high, cells))
    return counted


def _cube_status_deltas(session: Session, indicator: str, prefix: str, start: date, end: date,
                        months: bool) -> list[tuple]:
    """A stock's changes up to ``end`` from the cubes: the months wholly before the window from the
    month cube (each counted at its first day, before every period's end) when the region is a
    prefecture or wider, the days after them from the daily cube."""
    month_start = start.replace(day=1)
    spans: list[tuple[date | None, date, Any]] = [(None, end, CubeCell)]
    if months and len(prefix) <= 4:
        spans = [(None, month_start - timedelta(days=1), MonthCubeCell), (month_start, end, CubeCell)]
    deltas: list[tuple] = []
    for low, high, cells in spans:
        conditions = _indicator_conditions(indicator, cells)
        if prefix:
            conditions.append(cells.region_code.startswith(prefix, autoescape=True))
        deltas.extend(repo.cube_status_deltas(session, conditions, low, high, cells))
    return deltas


@dataclass(frozen=True)
class Query:
    indicator: str
    by: str | None = None
    period: str = "month"
    region: str | None = None  # None: the caller's whole region
    start: date | None = None
    end: date | None = None  # inclusive


@dataclass
class Table:
    query: Query
    region: str | None  # the region answered (None: the whole country)
    start: date
    end: date
    rows: list[str]  # period labels
    columns: list[str]  # breakdown values ("total" when none)
    protected: Protected
    drill: dict[str, str] = field(default_factory=dict)  # column -> region code to drill into

    def shown(self, i: int, j: int) -> str:
        return self.protected.shown(("cell", i, j))

    def records(self) -> list[dict[str, str]]:
        """The published table, one record per cell, as CSV and Parquet downloads carry it."""
        return [{"period": period, "value": column, "count": self.shown(i, j)}
                for i, period in enumerate(self.rows) for j, column in enumerate(self.columns)]


def _problem(name: str, code: str, message: str) -> Invalid:
    return Invalid(message, code=code, errors=[field_error(name, code, message)])


def operator_region(ctx: Ctx) -> str | None:
    """The region whose statistics the caller reads: None for the whole country."""
    region = accounts.staff_region(ctx.session, ctx.actor) if ctx.actor.kind == "staff" else None
    visible = institutions.visible_region(ctx.actor, region)
    if visible == "":
        raise Forbidden("Statistics are read by the health commission's operators of a region.",
                        code="region_out_of_scope")
    return visible


def _scope(ctx: Ctx, asked: str | None) -> str | None:
    mine = operator_region(ctx)
    if asked in (None, ""):
        return mine
    problem = region_problem(asked)
    if problem:
        raise _problem("region", "region_code_invalid", problem)
    if mine is not None and not region_within(asked, mine):
        raise Forbidden(f"Region {asked} is outside the region you operate in.", code="region_out_of_scope",
                        errors=[field_error("region", "region_out_of_scope", "Outside your region.")])
    return asked


def _dates(query: Query, today: date) -> tuple[date, date]:
    end = query.end or today
    start = query.start or (end - timedelta(days=29) if query.period == "day" else end.replace(day=1) - timedelta(days=334))
    if start > end:
        raise _problem("from", "period_invalid", "'from' must not be after 'to'.")
    days = (end - start).days + 1
    limit = MAX_DAYS_BY_DAY if query.period == "day" else MAX_DAYS
    if days > limit or start.year < 2000 or end.year > 2199:
        raise _problem("from", "period_invalid", f"A table covers at most {limit} days by {query.period}.")
    return start, end


def period_of(day: date, period: str) -> str:
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02}"
    if period == "month":
        return f"{day.year}-{day.month:02}"
    return "total"


def _periods(start: date, end: date, period: str) -> list[str]:
    labels: list[str] = []
    day = start
    while day <= end:
        label = period_of(day, period)
        if not labels or labels[-1] != label:
            labels.append(label)
        day += timedelta(days=1)
    return labels


def _period_ends(start: date, end: date, period: str) -> dict[str, date]:
    ends: dict[str, date] = {}
    day = start
    while day <= end:
        ends[period_of(day, period)] = day
        day += timedelta(days=1)
    return ends


def _label(by: str | None, value: Any, prefix: str) -> str:
    if by is None:
        return "total"
    if value is None or value == "":
        return "unknown"
    if by == "region" and len(prefix) < 6:
        return str(value).ljust(6, "0")
    return str(value)


def table(ctx: Ctx, query: Query, *, today: date | None = None, audit_purpose: bool = True,
          cube: bool = True, month_cube: bool = True) -> Table:
    """One indicator for a region and below, by period and one breakdown, small numbers protected.
    A flow indicator is read from the cubes: whole months from the month cube when the question
    allows it (``month_cube=False``: never), the rest from the daily cube (``cube=False``: all from
    the events, the same answer); a stock from the status changes the cubes hold (``cube=False``:
    the events')."""
    if query.indicator not in INDICATORS:
        raise _problem("indicator", "indicator_unknown", f"Indicators: {', '.join(INDICATORS)}.")
    if query.by is not None and query.by not in INDICATORS[query.indicator]:
        raise _problem("by", "breakdown_unknown",
                       f"{query.indicator} is broken down by {', '.join(INDICATORS[query.indicator])}.")
    if query.period not in PERIODS:
        raise _problem("period", "period_unknown", f"Periods: {', '.join(PERIODS)}.")
    region = _scope(ctx, query.region)
    start, end = _dates(query, today or utcnow().astimezone(CHINA).date())
    prefix = region_prefix(region) if region else ""
    rows = _periods(start, end, query.period)
    values: dict[tuple[str, str], int] = defaultdict(int)
    if not cube:
        conditions = _indicator_conditions(query.indicator)
        if prefix:
            conditions.append(StatEvent.region_code.startswith(prefix, autoescape=True))
    if query.indicator in STOCKS:
        statuses = STOCKS[query.indicator]
        ends = _period_ends(start, end, query.period)
        deltas = (_cube_status_deltas(ctx.session, query.indicator, prefix, start, end, month_cube) if cube
                  else repo.status_deltas(ctx.session, conditions, end))
        for label in rows:
            upto = ends[label]
            for day, status_, n in deltas:
                if _as_date(day) <= upto and status_ in statuses:
                    values[(label, status_)] += n
        columns = list(statuses)
    else:
        if cube:
            counted = _cube_counts(ctx.session, query, prefix, start, end, month_cube)
        else:
            counted = repo.counts(ctx.session, conditions, _dimension(query.by, prefix), start, end)
        for day, value, n in counted:
            values[(period_of(_as_date(day), query.period), _label(query.by, value, prefix))] += n
        columns = sorted({column for _, column in values}) or ["total"]
    cells = [[values.get((r, c), 0) for c in columns] for r in rows]
    drill = {}
    if query.by == "region" and len(prefix) < 6:
        drill = {c: c for c in columns if c != "unknown"}
    if audit_purpose:
        audit.record_statistics_query(ctx, f"stats.{query.indicator}")
    return Table(query, region, start, end, rows, columns, protect(cells, ctx.settings.stats_threshold), drill)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# -- family-doctor coverage of the key populations -------------------------------------------------

# (population, its contracted count) as family_doctors.CoverageRow names them: the residents of the
# centres' areas, those 65 and over, children under 6, and the recorded conditions.
COVERAGE_GROUPS = (("residents", "contracted"), ("elderly", "elderly_contracted"), ("children", "children_contracted"),
                   ("hypertension", "hypertension_contracted"), ("diabetes", "diabetes_contracted"),
                   ("pregnant", "pregnant_contracted"), ("services_promised", "services_delivered"))


@dataclass
class CoverageLine:
    """One centre (or the region, ``institution_id`` None): per group, (covered, population, share) as
    published."""

    institution_id: str | None
    name: str
    figures: dict[str, tuple[str, str, str]]


@dataclass
class Coverage:
    region: str
    centres: list[CoverageLine]
    total: CoverageLine
    threshold: int


def coverage(ctx: Ctx, region: str | None = None) -> Coverage:
    """Family-doctor coverage of the key populations in a region (the caller's, or one within it), per
    centre and for the region, small numbers protected like every console table. The figures are the
    family-doctor domain's (``family_doctors.service.regional_coverage``). Each count column is
    protected down the centres with the region's total (contracts belong to one centre, so a
    column's total is the region's); a share is shown only where both its counts are."""
    scope = _scope(ctx, region) or ctx.settings.home_region
    rows, total = family_doctors.regional_coverage(ctx, scope)
    threshold = ctx.settings.stats_threshold
    shown: dict[str, Protected] = {}
    for population, covered in COVERAGE_GROUPS:
        for name in (population, covered):
            # A region with no centre yet: one empty line, so the region's line reads 0.
            shown[name] = protect([[getattr(r, name)] for r in rows] or [[0]], threshold)

    def line(i: int | None, row: Any) -> CoverageLine:
        figures = {}
        for population, covered in COVERAGE_GROUPS:
            counts = []
            for name in (covered, population):
                if i is not None:
                    counts.append(shown[name].shown(("cell", i, 0)))
                elif name == population and population != "services_promised" and \
                        shown[name].published(("col", 0)) is not None:
                    # The region's population is read on its own (two centres may serve one area), so
                    # it need not be the column's sum: withheld when small, and wherever the column's
                    # sum had to be.
                    value = getattr(total, name)
                    counts.append(f"<{threshold}" if 0 < value < threshold else str(value))
                else:
                    counts.append(shown[name].shown(("col", 0)))
            part, whole = counts
            share = f"{100 * int(part) / int(whole):.1f}%" if part.isdigit() and whole.isdigit() and int(whole) else "—"
            figures[population] = (part, whole, share)
        return CoverageLine(row.key if i is not None else None, row.label, figures)

    audit.record_statistics_query(ctx, "stats.coverage")
    return Coverage(scope, [line(i, r) for i, r in enumerate(rows)], line(None, total), threshold)


# -- downloads -------------------------------------------------------------------------------------

def to_csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return out.getvalue()


def to_parquet(records: list[dict[str, Any]], columns: Iterable[str] = ("period", "value", "count")) -> bytes:
    """The records as a Parquet file (every column text, as published); ``columns`` when there are none."""
    import pyarrow as pa  # noqa: PLC0415 - loaded for a Parquet download only
    import pyarrow.parquet as pq  # noqa: PLC0415 - as above

    columns = list(records[0]) if records else list(columns)
    arrays = {name: pa.array([str(r[name]) if r[name] is not None else None for r in records], pa.string())
              for name in columns}
    sink = io.BytesIO()
    pq.write_table(pa.table(arrays), sink)
    return sink.getvalue()


# -- the national daily card-use report ------------------------------------------------------------

REPORT_FIELDS = ("report_date", "region_code", "institution_id", "care_step", "channel", "terminal_type", "uses")


def daily_report(ctx: Ctx, day: date, region: str | None = None, *,
                 job_output: Path | str | None = None) -> list[dict[str, Any]]:
    """The card uses of one day (China time) by institution, care step, channel and terminal type, in
    the national report's layout (docs/statistics.md): the return sent upward, so exact counts. Read
    from the store, or (``job_output``: the aggregation job's output directory) from the lines the
    job wrote for that day, at national volume: the same report either way."""
    scope = _scope(ctx, region)
    prefix = region_prefix(scope) if scope else ""
    if job_output is None:
        conditions = _indicator_conditions("card_uses")
        if prefix:
            conditions.append(StatEvent.region_code.startswith(prefix, autoescape=True))
        lines = repo.institutions_present(ctx.session, conditions, day, day)
    else:
        lines = _report_lines(Path(job_output), day, prefix)
    audit.record_statistics_query(ctx, "stats.daily_report")
    records = [{"report_date": day.isoformat(), "region_code": region_code, "institution_id": institution or "",
                "care_step": care_step or "000000", "channel": channel or "", "terminal_type": terminal_type or "99",
                "uses": int(n)}
               for institution, region_code, care_step, channel, terminal_type, n in lines]
    # Ordered as published (a missing value sorts as what it shows), whichever database or file it came from.
    return sorted(records, key=lambda r: (r["institution_id"], r["region_code"], r["care_step"], r["channel"],
                                          r["terminal_type"]))


def _report_lines(root: Path, day: date, prefix: str) -> list[tuple]:
    """(institution, region, care step, channel, terminal type, uses) of ``day`` in the region from the
    aggregation job's output (``root/_report``, or ``root/_cube/_report`` given the export's directory).
    A day the job has not aggregated reads as a day without uses."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - loaded when reading the job's output only

    folder = root / aggregation.REPORT_OUT
    if not folder.is_dir() and (root / CUBE_OUT / aggregation.REPORT_OUT).is_dir():
        folder = root / CUBE_OUT / aggregation.REPORT_OUT
    if not folder.is_dir():
        raise NotFound(f"No aggregation output in {root} (run `ehc stats aggregate`).", code="job_output_missing")
    columns = ["institution_id", "region_code", "care_step", "channel", "terminal_type", "uses"]
    lines = []
    for part in sorted((folder / f"day={day.isoformat()}").glob(f"province={prefix[:2]}*")):
        for row in pq.read_table(part, columns=columns).to_pylist():
            if row["region_code"].startswith(prefix):
                lines.append(tuple(row[c] for c in columns))
    return lines


# -- Parquet export for the analytical engines -----------------------------------------------------

EXPORT_COLUMNS = ("source", "kind", "day", "hour", "region_code", "institution_id", "channel", "care_step",
                  "terminal_type", "document_type", "age_band", "sex", "from_status", "to_status")
EXPORT_MARK = "_exported_through"


def export_parquet(db: Any, directory: Path | str, *, batch: int = 200_000) -> tuple[int, int]:
    """Append the store's rows not yet exported to Parquet files under ``directory``, partitioned by
    ``day=`` and ``province=`` (DuckDB, Spark and pandas read them as one dataset). Exactly once: each
    batch's files are named after its first and last row id, so a rerun after a crash rewrites the
    same files, and the mark (``_exported_through``: the last row id written) moves only after them.
    Answers (rows written, last row id)."""
    import pyarrow as pa  # noqa: PLC0415 - loaded by the export only
    import pyarrow.parquet as pq  # noqa: PLC0415 - as above

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    mark_file = root / EXPORT_MARK
    done = int(mark_file.read_text().strip() or 0) if mark_file.exists() else 0
    written = 0
    while True:
        with db.session() as session:
            rows = repo.events_after(session, done, batch)
        if not rows:
            return written, done
        first, last = rows[0][0], rows[-1][0]
        columns = {name: [r[k + 1] for r in rows] for k, name in enumerate(EXPORT_COLUMNS)}
        columns["day"] = [d.isoformat() if isinstance(d, date) else str(d) for d in columns["day"]]
        columns["province"] = [(code or UNKNOWN_REGION)[:2] for code in columns["region_code"]]
        # An explicit schema: a column empty in a whole batch (no card use has a status) would
        # otherwise be written as Parquet's null type, which Spark cannot read (hour: int64, as
        # inferred before).
        schema = pa.schema([(name, pa.int64() if name == "hour" else pa.string()) for name in columns])
        pq.write_to_dataset(pa.table(columns, schema=schema), root, partition_cols=["day", "province"],
                            basename_template=f"part-{first:012d}-{last:012d}-{{i}}.parquet",
                            existing_data_behavior="overwrite_or_ignore")
        temporary = mark_file.with_suffix(".tmp")
        temporary.write_text(str(last))
        temporary.replace(mark_file)
        done = last
        written += len(rows)


# -- the aggregation job: the export into the cube, on DuckDB or Spark ------------------------------

ENGINES = aggregation.ENGINES
CUBE_OUT = "_cube"  # the job's answer, under the export's directory unless told otherwise


@dataclass
class AggregateReport:
    engine: str
    partitions: list[tuple[str, str]]  # (day, province) written (and loaded)
    cells: int  # cube cells loaded into stats_cube (0 when not loaded)
    out: Path


def aggregate(db: Any, directory: Path | str, *, engine: str = "duckdb", out: Path | str | None = None,
              since: str = "", load: bool = True) -> AggregateReport:
    """Run the aggregation job (``aggregation.CUBE_SQL``) over the Parquet export in ``directory`` on
    ``engine``, writing the cube as Parquet partitioned by day and province under ``out`` (default
    ``directory/_cube``); then, with ``load``, replace those partitions of ``stats_cube`` with it
    (:func:`load_cube`), where the console reads them."""
    if engine not in ENGINES:
        raise Invalid(f"Engines: {', '.join(ENGINES)}.", code="engine_unknown")
    root = Path(directory)
    target = Path(out) if out is not None else root / CUBE_OUT
    if not any(root.glob("day=*/province=*/*.parquet")):
        return AggregateReport(engine, [], 0, target)
    try:
        partitions = aggregation.run(engine, root, target, since)
    except ValueError as error:
        raise Invalid(str(error), code="since_invalid") from None
    cells = load_cube(db, target, partitions, exported_through=_export_mark(root)) if load else 0
    return AggregateReport(engine, partitions, cells, target)


def _export_mark(root: Path) -> int | None:
    mark = root / EXPORT_MARK
    return int(mark.read_text().strip() or 0) if mark.exists() else None


def load_cube(db: Any, out: Path | str, partitions: list[tuple[str, str]], *,
              exported_through: int | None = None) -> int:
    """Replace the daily cube's cells of each (day, province) partition with the job's answer for it,
    and the month cube's of each (month, province) holding one (``out/_month``), in one transaction
    under every source's refresh lock (so no refresh adds to the cubes meanwhile); rerunning it loads
    the same cells again. When the answer came from this store's export (``exported_through``: its
    mark), the store must hold no row beyond the mark, or the cells of events not yet exported would be
    lost: refused, export first. Answers the cells loaded (both cubes)."""
    # pyarrow is loaded by the job's load only (the server never reads Parquet cubes).
    import pyarrow.parquet as pq  # noqa: PLC0415

    root = Path(out)
    with db.session() as session:
        for name in sorted(set(_sources) | {row.source for row in repo.watermarks(session)}):
            dialect.serialise(session, f"{REFRESH_LOCK}:{name}")
        if exported_through is not None and repo.last_event_id(session) > exported_through:
            raise Problem("The store holds events not yet exported: run `ehc stats export` first.",
                          code="export_behind", status=409, title="Conflict")
        cells = 0
        for table, folder, time, columns, written in (
                (CubeCell, root, "day", aggregation.CUBE_COLUMNS, partitions),
                (MonthCubeCell, root / aggregation.MONTH_OUT, "month", aggregation.MONTH_CUBE_COLUMNS,
                 aggregation.month_partitions(partitions))):
            by_province: dict[str, list[date]] = defaultdict(list)
            for when, province in written:
                by_province[province].append(date.fromisoformat(when))
            repo.clear_cube(session, by_province, table)
            for when, province in written:
                rows = pq.read_table(folder / f"{time}={when}" / f"province={province}",
                                     columns=[c for c in columns if c != time]).to_pylist()
                at = date.fromisoformat(when)
                for row in rows:
                    row[time] = at
                repo.put_cube(session, rows, table)
                cells += len(rows)
        return cells


# -- scheduled reports -----------------------------------------------------------------------------

REPORTS = ("daily_report", "table")
SCHEDULE_PERIODS = ("day", "week", "month")
FREQUENCIES = ("daily", "weekly")
FORMATS = ("csv", "parquet")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
# A runner that was down (no server, a failing database) catches up the due days of the last week,
# no further: older days are better asked for by hand (``ehc stats report``).
CATCH_UP_DAYS = 7
SCHEDULE_LOCK = "ehc.statistics.schedule"


@dataclass(frozen=True)
class ScheduleRequest:
    report: str  # daily_report | table
    frequency: str = "daily"
    weekday: int | None = None  # weekly: 0 Monday ... 6 Sunday
    format: str = "csv"
    indicator: str | None = None
    by: str | None = None
    period: str | None = None  # day | week | month
    region: str | None = None  # None: the caller's whole region
    send_upstream: bool = False  # each file also to the upper-level platform


def reports_dir(ctx: Ctx) -> Path:
    return Path(ctx.settings.data_dir) / "reports"


def create_schedule(ctx: Ctx, request: ScheduleRequest, *, today: date | None = None) -> ReportSchedule:
    """A new schedule for the caller's region (or a region below it, never beyond)."""
    if request.report not in REPORTS:
        raise _problem("report", "report_unknown", f"Reports: {', '.join(REPORTS)}.")
    if request.frequency not in FREQUENCIES:
        raise _problem("frequency", "frequency_unknown", f"Frequencies: {', '.join(FREQUENCIES)}.")
    weekday = request.weekday if request.frequency == "weekly" else None
    if request.frequency == "weekly" and (weekday is None or not 0 <= weekday <= 6):
        raise _problem("weekday", "weekday_invalid", "A weekly report names its weekday, 0 (Monday) to 6 (Sunday).")
    if request.format not in FORMATS:
        raise _problem("format", "format_unknown", f"Formats: {', '.join(FORMATS)}.")
    indicator = by = period = None
    if request.report == "table":
        indicator, by, period = request.indicator or "", request.by or None, request.period or ""
        if indicator not in INDICATORS:
            raise _problem("indicator", "indicator_unknown", f"Indicators: {', '.join(INDICATORS)}.")
        if by is not None and by not in INDICATORS[indicator]:
            raise _problem("by", "breakdown_unknown", f"{indicator} is broken down by {', '.join(INDICATORS[indicator])}.")
        if period not in SCHEDULE_PERIODS:
            raise _problem("period", "period_unknown", f"Periods: {', '.join(SCHEDULE_PERIODS)}.")
    if request.send_upstream and not ctx.settings.upstream_url:
        raise _problem("send_upstream", "upstream_not_configured",
                       "No upper-level platform is configured here (EHC_UPSTREAM_URL): files can only be downloaded.")
    region = _scope(ctx, request.region)
    return repo.add_schedule(ctx.session, ReportSchedule(
        report=request.report, indicator=indicator, breakdown=by, period=period, region_code=region,
        frequency=request.frequency, weekday=weekday, format=request.format, status="active",
        send_upstream=request.send_upstream,
        created_by=(ctx.actor.id or ctx.actor.kind)[:64],
        created_on=today or utcnow().astimezone(CHINA).date()))


def _visible(schedule: ReportSchedule, mine: str | None) -> bool:
    """Whether a reader of region ``mine`` (None: the whole country) sees ``schedule``."""
    return schedule.status != "deleted" and (
        mine is None or (schedule.region_code is not None and region_within(schedule.region_code, mine)))


def schedules_of(ctx: Ctx) -> list[ReportSchedule]:
    """The schedules of the caller's region and below (a regional caller never sees another region's)."""
    mine = operator_region(ctx)
    return [s for s in repo.schedules(ctx.session, statuses=("active", "paused")) if _visible(s, mine)]


def get_schedule(ctx: Ctx, schedule_id: int) -> ReportSchedule:
    schedule = repo.schedule(ctx.session, schedule_id)
    if schedule is None or not _visible(schedule, operator_region(ctx)):  # another region's: as if absent
        raise NotFound("No such report schedule.", code="schedule_not_found")
    return schedule


def set_schedule_status(ctx: Ctx, schedule_id: int, status: str) -> ReportSchedule:
    """Pause (``paused``), resume (``active``) or delete (``deleted``: runs no more, no longer listed;
    its delivery rows stay for the audit trail)."""
    if status not in ("active", "paused", "deleted"):
        raise _problem("status", "status_unknown", "A schedule is active, paused or deleted.")
    schedule = get_schedule(ctx, schedule_id)
    schedule.status = status
    ctx.session.flush()
    return schedule


def deliveries_of(ctx: Ctx, schedule_ids: list[int], *, limit: int = 200) -> list[ReportDelivery]:
    """The files of these schedules, newest first (one the caller does not see: not found)."""
    mine = operator_region(ctx)
    for schedule_id in schedule_ids:
        schedule = repo.schedule(ctx.session, schedule_id)
        if schedule is None or not _visible(schedule, mine):
            raise NotFound("No such report schedule.", code="schedule_not_found")
    return repo.deliveries(ctx.session, schedule_ids, limit)


def due_days(schedule: ReportSchedule, today: date, delivered: set[date]) -> list[date]:
    """The days (China time) on which ``schedule`` is due and has no file yet: every day, or its
    weekday, from the day it was made, catching up at most ``CATCH_UP_DAYS``."""
    if schedule.status != "active":
        return []
    day = max(_as_date(schedule.created_on), today - timedelta(days=CATCH_UP_DAYS - 1))
    days = []
    while day <= today:
        if (schedule.frequency == "daily" or day.weekday() == schedule.weekday) and day not in delivered:
            days.append(day)
        day += timedelta(days=1)
    return days


def report_window(schedule: ReportSchedule, due_on: date) -> tuple[date, date]:
    """The days a delivery due on ``due_on`` covers: up to the day before (the last whole day), since
    the previous delivery (a day, or a week, before), reaching back to the start of the period that
    holds that first day, so that no period of the table is cut at its start."""
    end = due_on - timedelta(days=1)
    start = due_on - timedelta(days=1 if schedule.frequency == "daily" else 7)
    if schedule.report == "table" and schedule.period == "week":
        start -= timedelta(days=start.weekday())
    elif schedule.report == "table" and schedule.period == "month":
        start = start.replace(day=1)
    return start, end


def _purpose(schedule: ReportSchedule) -> str:
    return "stats.daily_report" if schedule.report == "daily_report" else f"stats.{schedule.indicator}"


def _file_name(schedule: ReportSchedule, due_on: date) -> str:
    what = "card-uses" if schedule.report == "daily_report" else (
        f"{schedule.indicator}-{schedule.breakdown or 'total'}-{schedule.period}")
    return f"{schedule.id}/{due_on.isoformat()}-{what}-{schedule.region_code or 'national'}.{schedule.format}"


def _produce(ctx: Ctx, schedule: ReportSchedule, start: date, end: date) -> bytes:
    """The report's file: the same rows the API's report and table downloads carry (a table small-number
    protected, the daily report exact); each query audited by ``daily_report`` / ``table``."""
    if schedule.report == "daily_report":
        records: list[dict[str, Any]] = []
        day = start
        while day <= end:
            records.extend(daily_report(ctx, day, schedule.region_code))
            day += timedelta(days=1)
        header: tuple[str, ...] = REPORT_FIELDS
    else:
        query = Query(schedule.indicator or "", schedule.breakdown, schedule.period or "day", schedule.region_code,
                      start, end)
        records = table(ctx, query, today=end).records()
        header = ("period", "value", "count")
    if schedule.format == "parquet":
        return to_parquet(records, header)
    return (to_csv(records) or ",".join(header) + "\n").encode("utf-8")


def _write(path: Path, body: bytes) -> None:
    """Write then rename: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(body)
    temporary.replace(path)


def deliver(ctx: Ctx, schedule: ReportSchedule, due_on: date) -> ReportDelivery | None:
    """Make the file of ``schedule`` due on ``due_on`` and record it, in the caller's transaction;
    None when it exists already. Serialised per schedule and day, and ``(schedule, day)`` is unique:
    two runners at once, or a rerun, make one file and one row."""
    dialect.serialise(ctx.session, f"{SCHEDULE_LOCK}:{schedule.id}:{due_on.isoformat()}")
    if repo.delivery(ctx.session, schedule.id, due_on) is not None:
        return None
    start, end = report_window(schedule, due_on)
    body = _produce(ctx, schedule, start, end)
    relative = _file_name(schedule, due_on)
    _write(reports_dir(ctx) / relative, body)
    return repo.add_delivery(ctx.session, ReportDelivery(
        schedule_id=schedule.id, due_on=due_on, start=start, end=end, path=relative, size=len(body),
        sha256=hashlib.sha256(body).hexdigest(), created_at=utcnow()))


def run_schedule_now(ctx: Ctx, schedule_id: int, *, now: datetime | None = None) -> list[ReportDelivery]:
    """The due days of one schedule the caller sees, delivered now by the caller (``Run now``)."""
    schedule = get_schedule(ctx, schedule_id)
    today = (now or utcnow()).astimezone(CHINA).date()
    delivered = repo.delivered_days(ctx.session, schedule.id, today - timedelta(days=CATCH_UP_DAYS))
    made = [deliver(ctx, schedule, day) for day in due_days(schedule, today, delivered)]
    return [d for d in made if d is not None]


@dataclass
class ScheduleRun:
    made: list[tuple[int, date, str]] = field(default_factory=list)  # (schedule, due day, file)
    failed: list[tuple[int, date, str]] = field(default_factory=list)  # (schedule, due day, why)
    sending: sending.SendRun = field(default_factory=sending.SendRun)  # files sent upward (or not yet)


def run_schedules(db: Any, make_ctx: Callable[[Session], Ctx], *, now: datetime | None = None) -> ScheduleRun:
    """Deliver every due report (the refresher after each refresh, ``ehc stats run-schedules``): one
    transaction per schedule and day, as the system actor ``stats-schedule:<id>``, so the audit trail
    names the schedule behind each query. A schedule that fails is logged and retried at the next run;
    the others go on."""
    today = (now or utcnow()).astimezone(CHINA).date()
    with db.session() as session:
        work = [(s.id, day) for s in repo.schedules(session, statuses=("active",))
                for day in due_days(s, today, repo.delivered_days(session, s.id, today - timedelta(days=CATCH_UP_DAYS)))]
    run = ScheduleRun()
    for schedule_id, day in work:
        try:
            with db.session() as session:
                base = make_ctx(session)
                ctx = dataclasses.replace(base, actor=Actor.system(f"stats-schedule:{schedule_id}", base.actor.channel))
                schedule = repo.schedule(session, schedule_id)
                made = deliver(ctx, schedule, day) if schedule is not None and schedule.status == "active" else None
                path = made.path if made is not None else None
        except IntegrityError:  # another runner's row for this day committed first: its file stands
            continue
        except Problem as problem:  # a schedule its indicator no longer fits, say: the others go on
            log.warning("scheduled report %s of %s refused: %s", schedule_id, day, problem.code)
            run.failed.append((schedule_id, day, problem.code))
            continue
        if path is not None:
            run.made.append((schedule_id, day, path))
    run.sending = send_upward(db, make_ctx)
    return run


def send_upward(db: Any, make_ctx: Callable[[Session], Ctx], *, http: Any = None) -> sending.SendRun:
    """Send the files of the schedules marked ``send_upstream`` that wait for a (next) try to the
    upper-level platform (``sending``); nothing when none is configured."""
    return sending.send_due(db, make_ctx, MEDIA_TYPES, reports_dir, http=http)


def delivery_file(ctx: Ctx, schedule_id: int, delivery_id: int) -> tuple[ReportSchedule, ReportDelivery, bytes]:
    """A delivered file, for a caller who sees its schedule (another region's: not found); checked
    against the digest recorded when it was made, and its reading audited as the report's query is."""
    schedule = get_schedule(ctx, schedule_id)
    row = repo.delivery_by_id(ctx.session, delivery_id)
    if row is None or row.schedule_id != schedule.id:
        raise NotFound("No such delivered report.", code="delivery_not_found")
    path = reports_dir(ctx) / row.path
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise NotFound("The report's file is no longer in the data directory.", code="delivery_file_missing") from None
    if hashlib.sha256(body).hexdigest() != row.sha256:
        raise Problem("The report's file differs from the one delivered.", code="delivery_file_altered", status=409,
                      title="Conflict")
    audit.record_statistics_query(ctx, _purpose(schedule))
    return schedule, row, body
