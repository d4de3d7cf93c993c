"""The appointments domain's queries. Places are taken and given back with one conditional
``UPDATE`` each, so a period's counters never pass its quotas however many requests race."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from .models import (
    LIVE,
    Booking,
    ClinicSession,
    Closure,
    Event,
    Period,
    Policy,
    Template,
    WaitlistEntry,
)

# -- places ---------------------------------------------------------------------------------------

def take_place(session: Session, period_id: int, pool: str) -> bool:
    """One place of ``pool`` in the period, if one is left: True when this transaction took it. The
    row stays locked until commit (PostgreSQL), so a racing request waits and then sees the count."""
    used, quota = getattr(Period, f"used_{pool}"), getattr(Period, f"quota_{pool}")
    done = session.execute(update(Period).where(Period.id == period_id, used < quota)
                           .values({used: used + 1}).execution_options(synchronize_session=False))
    return done.rowcount == 1


def give_back(session: Session, period_id: int, pool: str) -> None:
    used = getattr(Period, f"used_{pool}")
    session.execute(update(Period).where(Period.id == period_id, used > 0).values({used: used - 1})
                    .execution_options(synchronize_session=False))


def _as_int(flag: ColumnElement[bool]):  # noqa: ANN202
    return case((flag, 1), else_=0)


# -- rows -----------------------------------------------------------------------------------------

def period(session: Session, period_id: int) -> Period | None:
    return session.get(Period, period_id, populate_existing=True)


def clinic_session(session: Session, session_id: str) -> ClinicSession | None:
    return session.get(ClinicSession, session_id)


def periods_of(session: Session, session_id: str) -> list[Period]:
    return list(session.scalars(select(Period).where(Period.session_id == session_id)
                                .order_by(Period.starts_at).execution_options(populate_existing=True)))


def booking_by_reference(session: Session, reference: str) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.reference == reference))


def booking(session: Session, booking_id: str) -> Booking | None:
    return session.get(Booking, booking_id)


def session_at(session: Session, department_id: str, doctor: str, starts_at: datetime) -> ClinicSession | None:
    return session.scalar(select(ClinicSession).where(ClinicSession.department_id == department_id,
                                                      ClinicSession.doctor == doctor,
                                                      ClinicSession.starts_at == starts_at))


def templates(session: Session, institution_id: str, active_only: bool = True) -> list[Template]:
    query = select(Template).where(Template.institution_id == institution_id)
    if active_only:
        query = query.where(Template.active.is_(True))
    return list(session.scalars(query.order_by(Template.department_code, Template.weekday, Template.start)))


def closures(session: Session, institution_id: str, first: date, last: date) -> list[Closure]:
    return list(session.scalars(select(Closure).where(Closure.institution_id == institution_id,
                                                      Closure.day.between(first, last)).order_by(Closure.day)))


def live_in_session(session: Session, session_id: str, person_id: str) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.session_id == session_id, Booking.person_id == person_id,
                                                Booking.status.in_(LIVE)))


def count_outstanding(session: Session, person_id: str, now: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Booking).join(Period, Period.id == Booking.period_id)
                          .where(Booking.person_id == person_id, Booking.status.in_(("held", "booked")),
                                 Period.ends_at > now)) or 0


def count_in_department_day(session: Session, person_id: str, department_id: str, day: date) -> int:
    return session.scalar(select(func.count()).select_from(Booking)
                          .join(ClinicSession, ClinicSession.id == Booking.session_id)
                          .where(Booking.person_id == person_id, Booking.status.in_(LIVE),
                                 ClinicSession.department_id == department_id, ClinicSession.day == day)) or 0


def events_for_person(session: Session, person_id: str, action: str, since: datetime) -> list[Event]:
    return list(session.scalars(select(Event).join(Booking, Booking.id == Event.booking_id)
                                .where(Booking.person_id == person_id, Event.action == action, Event.at >= since)
                                .order_by(Event.at)))


def count_actor_events(session: Session, actor_kind: str, actor_id: str, action: str, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Event).where(
        Event.actor_kind == actor_kind, Event.actor_id == actor_id, Event.action == action, Event.at >= since)) or 0


def count_source_events(session: Session, source_index: str, action: str, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Event).where(
        Event.source_index == source_index, Event.action == action, Event.at >= since)) or 0


def bookings_of(session: Session, person_ids: list[str], limit: int = 100) -> list[Booking]:
    return list(session.scalars(select(Booking).join(Period, Period.id == Booking.period_id)
                                .where(Booking.person_id.in_(person_ids))
                                .order_by(Period.starts_at.desc(), Booking.id).limit(limit)))


def bookings_of_person_all(session: Session, person_id: str) -> list[Booking]:
    return list(session.scalars(select(Booking).where(Booking.person_id == person_id).order_by(Booking.id)))


def live_bookings_of_session(session: Session, session_id: str) -> list[Booking]:
    return list(session.scalars(select(Booking).where(Booking.session_id == session_id,
                                                      Booking.status.in_(("held", "booked")))
                                .order_by(Booking.id)))


def future_live_of_person(session: Session, person_id: str, now: datetime) -> list[Booking]:
    return list(session.scalars(select(Booking).join(Period, Period.id == Booking.period_id)
                                .where(Booking.person_id == person_id, Booking.status.in_(("held", "booked")),
                                       Period.starts_at > now).order_by(Booking.id)))


def due_holds(session: Session, now: datetime, period_id: int | None = None, limit: int = 500) -> list[Booking]:
    query = select(Booking).where(Booking.status == "held", Booking.hold_expires_at < now)
    if period_id is not None:
        query = query.where(Booking.period_id == period_id)
    return list(session.scalars(query.order_by(Booking.hold_expires_at).limit(limit).with_for_update(
        skip_locked=True)))


def due_no_shows(session: Session, before: datetime, limit: int = 500) -> list[Booking]:
    return list(session.scalars(select(Booking).join(Period, Period.id == Booking.period_id)
                                .where(Booking.status == "booked", Period.ends_at < before)
                                .order_by(Booking.id).limit(limit).with_for_update(of=Booking, skip_locked=True)))


def due_reminders(session: Session, first: datetime, last: datetime, limit: int = 500) -> list[Booking]:
    return list(session.scalars(select(Booking).join(Period, Period.id == Booking.period_id)
                                .where(Booking.status == "booked", Booking.reminded_at.is_(None),
                                       Period.starts_at.between(first, last))
                                .order_by(Booking.id).limit(limit).with_for_update(of=Booking, skip_locked=True)))


def todays_bookings(session: Session, institution_id: str, day: date, department_code: str | None) -> list[Booking]:
    query = (select(Booking).join(ClinicSession, ClinicSession.id == Booking.session_id)
             .join(Period, Period.id == Booking.period_id)
             .where(ClinicSession.institution_id == institution_id, ClinicSession.day == day,
                    Booking.status.in_(("booked", "arrived", "no_show"))))
    if department_code:
        query = query.where(ClinicSession.department_code == department_code)
    return list(session.scalars(query.order_by(Period.starts_at, Booking.id)))


def live_for_check_in(session: Session, person_ids: set[str], institution_id: str, day: date) -> list[Booking]:
    return list(session.scalars(select(Booking).join(ClinicSession, ClinicSession.id == Booking.session_id)
                                .join(Period, Period.id == Booking.period_id)
                                .where(Booking.person_id.in_(person_ids), Booking.status == "booked",
                                       ClinicSession.institution_id == institution_id, ClinicSession.day == day)
                                .order_by(Period.starts_at)))


def events_of_booking(session: Session, booking_id: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.booking_id == booking_id).order_by(Event.id)))


def search_sessions(session: Session, *, first: date, last: date, institution_id: str | None,
                    department_code: str | None, doctor: str | None, limit: int) -> list[ClinicSession]:
    query = select(ClinicSession).where(ClinicSession.day.between(first, last), ClinicSession.status == "open")
    if institution_id:
        query = query.where(ClinicSession.institution_id == institution_id)
    if department_code:
        query = query.where(ClinicSession.department_code == department_code)
    if doctor:
        query = query.where(ClinicSession.doctor == doctor)
    return list(session.scalars(query.order_by(ClinicSession.starts_at, ClinicSession.id).limit(limit)))


def sessions_of_institution(session: Session, institution_id: str, first: date, last: date) -> list[ClinicSession]:
    return list(session.scalars(select(ClinicSession).where(ClinicSession.institution_id == institution_id,
                                                            ClinicSession.day.between(first, last))
                                .order_by(ClinicSession.starts_at, ClinicSession.department_code)))


def free_totals(session: Session, session_ids: list[str], pool: str, now: datetime) -> dict[str, int]:
    """Places a caller drawing from ``pool`` can still take in each session, from now on."""
    if not session_ids:
        return {}
    released = ClinicSession.referral_release_at <= now
    own = getattr(Period, f"quota_{pool}") - getattr(Period, f"used_{pool}")
    spare = Period.quota_referral - Period.used_referral
    free = own if pool == "referral" else own + _as_int(released) * spare
    rows = session.execute(select(Period.session_id, func.sum(free)).join(ClinicSession,
                                                                        ClinicSession.id == Period.session_id)
                           .where(Period.session_id.in_(session_ids), Period.starts_at > now)
                           .group_by(Period.session_id))
    return {session_id: int(total or 0) for session_id, total in rows}


def next_free(session: Session, *, department_id: str, doctor: str | None, pool: str, after: datetime,
              exclude_session: str | None, limit: int) -> list[tuple[Period, ClinicSession]]:
    released = ClinicSession.referral_release_at <= after
    own = getattr(Period, f"used_{pool}") < getattr(Period, f"quota_{pool}")
    ok = own if pool == "referral" else or_(own, and_(released, Period.used_referral < Period.quota_referral))
    query = (select(Period, ClinicSession).join(ClinicSession, ClinicSession.id == Period.session_id)
             .where(ClinicSession.department_id == department_id, ClinicSession.status == "open",
                    Period.starts_at > after, ok))
    if doctor is not None:
        query = query.where(ClinicSession.doctor == doctor)
    if exclude_session is not None:
        query = query.where(ClinicSession.id != exclude_session)
    return [(p, s) for p, s in session.execute(query.order_by(Period.starts_at, Period.id).limit(limit))]


def referral_places(session: Session, *, institution_id: str, department_code: str, after: datetime,
                    until: datetime, first_day: date, last_day: date, limit: int) -> list[tuple[Period, ClinicSession]]:
    """The first open periods of a department from ``after`` to ``until`` with a referral place left
    (their sessions' days from ``first_day`` to ``last_day``, for the search index), earliest first."""
    query = (select(Period, ClinicSession).join(ClinicSession, ClinicSession.id == Period.session_id)
             .where(ClinicSession.department_code == department_code, ClinicSession.day.between(first_day, last_day),
                    ClinicSession.institution_id == institution_id, ClinicSession.status == "open",
                    Period.starts_at > after, Period.starts_at <= until,
                    Period.used_referral < Period.quota_referral))
    return [(p, s) for p, s in session.execute(query.order_by(Period.starts_at, Period.id).limit(limit))]


def booking_events_after(session: Session, after_id: int, actions: tuple[str, ...], limit: int) -> list[tuple]:
    """(event, the booking's institution, person, from_waitlist) of the booking events with one of
    ``actions`` after ``after_id``, in id order (the statistics source)."""
    return [tuple(row) for row in session.execute(
        select(Event, Booking.institution_id, Booking.person_id, Booking.from_waitlist)
        .join(Booking, Booking.id == Event.booking_id)
        .where(Event.id > after_id, Event.action.in_(actions)).order_by(Event.id).limit(limit))]


# -- waitlist -------------------------------------------------------------------------------------

def first_waiting(session: Session, period_id: int) -> WaitlistEntry | None:
    return session.scalar(select(WaitlistEntry).where(WaitlistEntry.period_id == period_id,
                                                      WaitlistEntry.status == "waiting")
                          .order_by(WaitlistEntry.id).limit(1).with_for_update(skip_locked=True))


def waitlist_of(session: Session, person_ids: list[str]) -> list[WaitlistEntry]:
    return list(session.scalars(select(WaitlistEntry).where(WaitlistEntry.person_id.in_(person_ids))
                                .order_by(WaitlistEntry.id.desc()).limit(100)))


def waitlist_entry(session: Session, entry_id: int) -> WaitlistEntry | None:
    return session.get(WaitlistEntry, entry_id)


def entry_of_booking(session: Session, booking_id: str) -> WaitlistEntry | None:
    return session.scalar(select(WaitlistEntry).where(WaitlistEntry.booking_id == booking_id))


def waiting_of_person(session: Session, person_id: str) -> list[WaitlistEntry]:
    return list(session.scalars(select(WaitlistEntry).where(WaitlistEntry.person_id == person_id)
                                .order_by(WaitlistEntry.id)))


def position(session: Session, entry: WaitlistEntry) -> int:
    return (session.scalar(select(func.count()).select_from(WaitlistEntry).where(
        WaitlistEntry.period_id == entry.period_id, WaitlistEntry.status == "waiting",
        WaitlistEntry.id < entry.id)) or 0) + 1


# -- policy ---------------------------------------------------------------------------------------

def policies(session: Session, region_codes: list[str]) -> list[Policy]:
    """The policies of these region codes, the broadest first (a province, a city, a district)."""
    rows = list(session.scalars(select(Policy).where(Policy.region_code.in_(region_codes))))
    return sorted(rows, key=lambda p: len(p.region_code))
