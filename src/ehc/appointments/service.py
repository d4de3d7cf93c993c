"""Appointment rules (docs/appointments.md): schedules, sessions and periods, holds and bookings,
the waitlist, check-in by scan, the sweeps, and the reactions to merges and card cancellations.

Every function takes a ``Ctx``. Limits hold under races in the database: a place is taken with one
conditional ``UPDATE`` of its period (``repository.take_place``; check constraints behind it), one
live booking per person and session is a partial unique index, and a person's own limits (how many
outstanding, per department and day) are checked under ``kit.dialect.serialise`` on the person.

The sweeps (holds that expired, no-shows, reminders) take every row that is due, not only those due
"now": run after a stop, they catch up with everything that fell due meanwhile.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from ..accounts import service as accounts
from ..audit import service as audit
from ..cards import service as cards
from ..cards.service import Card, CardStatus
from ..institutions import service as institutions
from ..kit import dialect, ids
from ..kit.clock import CHINA, china_today, in_china, utcnow
from ..kit.codes import Channel
from ..kit.context import Ctx
from ..kit.errors import Conflict, Forbidden, Invalid, NotFound, Problem, field_error
from ..kit.lasting import keep_and_raise
from ..kit.roles import Role
from ..mpi import service as mpi
from ..qr import service as qr
from . import repository as repo
from .models import (
    CATEGORIES,
    LIVE,
    POOLS,
    Booking,
    ClinicSession,
    Closure,
    Event,
    Period,
    Template,
    WaitlistEntry,
)

__all__ = [
    "CATEGORIES", "LIVE", "POOLS", "Booking", "ClinicSession", "Event", "Period", "Rules", "Template",
    "WaitlistEntry",
]

log = logging.getLogger("ehc.appointments")
SCENE_BOOKED = "0101011"  # care step: registration, booked visit (docs/codes.md)
SCENE_SAME_DAY = "0101012"  # care step: same-day registration
NOTIFY_PURPOSE = "appointment.notify"
BOOK_PURPOSE = "appointment.book"
BURST_WINDOW = timedelta(minutes=10)
NO_SHOW_GRACE = timedelta(minutes=30)
_REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud at a window
ONLINE_CHANNELS = frozenset({Channel.WEBSITE, Channel.OFFICIAL_ACCOUNT, Channel.MINI_PROGRAM})


# -- policy ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rules:
    """A region's booking rules; the defaults where the region set nothing (``appt_policies``)."""

    per_department_per_day: int = 1
    outstanding: int = 5
    cancellations: int = 3
    cancellation_window_days: int = 30
    no_shows: int = 3
    no_show_window_days: int = 90
    no_show_suspension_days: int = 30
    hold_minutes: int = 5
    cutoff_minutes: int = 120
    holds_per_burst: int = 10  # holds one account may start in BURST_WINDOW
    # Holds one address may start in BURST_WINDOW, whatever the accounts: a script rotating accounts.
    # Higher than per account: a hospital's or a campus's residents may share one address.
    holds_per_address_burst: int = 30


DEFAULT_RULES = Rules()


def rules_for(ctx: Ctx, institution_id: str) -> Rules:
    """The rules at an institution: the defaults, then its province's, city's and district's policy."""
    institution = institutions.find_institution(ctx.session, institution_id)
    region = institution.region_code if institution is not None else ""
    codes = [region[:n] for n in (2, 4, 6) if len(region) >= n]
    rules = DEFAULT_RULES
    for policy in repo.policies(ctx.session, codes):
        rules = replace(rules, **{f.name: getattr(policy, f.name) for f in fields(Rules)
                                  if getattr(policy, f.name, None) is not None})
    return rules


def set_policy(ctx: Ctx, region_code: str, **values: int | None) -> None:
    """Set (or clear, with None) a region's rules."""
    unknown = set(values) - {f.name for f in fields(Rules)} - {"holds_per_burst"}
    if unknown or not region_code.isdigit() or len(region_code) not in (2, 4, 6):
        raise Invalid("A policy is set for a 2, 4 or 6 digit region code with known rule names.",
                      code="policy_invalid")
    row = ctx.session.get(repo.Policy, region_code) or repo.Policy(region_code=region_code)
    for name, value in values.items():
        if value is not None and value < 0:
            raise Invalid(f"{name} is a number of at least 0.", code="policy_invalid")
        if hasattr(row, name):
            setattr(row, name, value)
    row.updated_at = utcnow()
    ctx.session.add(row)
    ctx.session.flush()


# -- problems -------------------------------------------------------------------------------------

class PeriodFull(Conflict):
    code = "period_full"
    title = "No place left in this period"


class LimitReached(Conflict):
    code = "booking_limit"
    title = "A booking rule refuses this"


class BookingBurst(Problem):
    status = 429
    code = "booking_burst"
    title = "Too many bookings at once"


def _invalid(field: str, code: str, message: str) -> Invalid:
    return Invalid(message, code=code, errors=[field_error(field, code, message)])


def _booking_not_found() -> NotFound:
    return NotFound("No booking with this reference.", code="booking_not_found")


# -- times ----------------------------------------------------------------------------------------

def _clock(raw: str, field: str) -> time:
    try:
        hours, minutes = raw.split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise _invalid(field, "time_invalid", "A time of day is HH:MM (China time).") from None


def at_china(day: date, clock: time) -> datetime:
    """A China wall-clock time on ``day`` as a UTC moment."""
    return datetime.combine(day, clock, tzinfo=CHINA).astimezone(utcnow().tzinfo)


def _scope(ctx: Ctx) -> str:
    """The institution a scheduler, clerk or hospital system works for."""
    if not ctx.actor.institution_id:
        raise Forbidden("Only an institution's staff and systems manage its appointments.",
                        code="institution_required")
    return ctx.actor.institution_id


def _department(ctx: Ctx, institution_id: str, code: str):  # noqa: ANN202
    institution = institutions.get_institution(ctx, institution_id)
    return institutions.get_department(ctx.session, institution, code)


# -- schedules ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """What a session looks like: its hours, periods, category, fee and per-period quotas."""

    start: str
    end: str
    period_minutes: int = 15
    category: str = "general"
    fee_fen: int = 0
    quota_window: int = 0
    quota_kiosk: int = 0
    quota_online: int = 0
    quota_referral: int = 0
    referral_release_hours: int = 24


def _check_shape(shape: Shape) -> tuple[time, time]:
    start, end = _clock(shape.start, "start"), _clock(shape.end, "end")
    if end <= start:
        raise _invalid("end", "session_hours_invalid", "A session ends after it starts, on the same day.")
    if shape.category not in CATEGORIES:
        raise _invalid("category", "category_invalid", f"A category is one of: {', '.join(CATEGORIES)}.")
    if not isinstance(shape.fee_fen, int) or shape.fee_fen < 0:
        raise _invalid("fee_fen", "fee_invalid", "A fee is a whole number of fen, at least 0.")
    if shape.period_minutes < 5 or shape.period_minutes > 240:
        raise _invalid("period_minutes", "period_invalid", "A period is 5 to 240 minutes.")
    quotas = [getattr(shape, f"quota_{p}") for p in POOLS]
    if min(quotas) < 0 or sum(quotas) == 0 or sum(quotas) > 500:
        raise _invalid("quota_online", "quota_invalid", "Quotas are at least 0, 1 to 500 places a period in all.")
    if shape.referral_release_hours < 0 or shape.referral_release_hours > 24 * 30:
        raise _invalid("referral_release_hours", "release_invalid", "The referral release is 0 to 720 hours.")
    return start, end


def add_template(ctx: Ctx, *, department_code: str, weekday: int, shape: Shape, doctor: str = "") -> Template:
    institution_id = _scope(ctx)
    department = _department(ctx, institution_id, department_code)
    _check_shape(shape)
    if weekday not in range(7):
        raise _invalid("weekday", "weekday_invalid", "A weekday is 0 (Monday) to 6 (Sunday).")
    template = Template(id=ids.new_id(), institution_id=institution_id, department_id=department.id,
                        department_code=department.code, doctor=_doctor(doctor), weekday=weekday,
                        **{f.name: getattr(shape, f.name) for f in fields(Shape)})
    ctx.session.add(template)
    ctx.session.flush()
    return template


def _doctor(doctor: str | None) -> str:
    doctor = " ".join((doctor or "").split())
    if len(doctor) > 64:
        raise _invalid("doctor", "doctor_invalid", "A doctor's name is at most 64 characters.")
    return doctor


def list_templates(ctx: Ctx) -> list[Template]:
    return repo.templates(ctx.session, _scope(ctx))


def retire_template(ctx: Ctx, template_id: str) -> Template:
    template = ctx.session.get(Template, template_id)
    if template is None or template.institution_id != _scope(ctx):
        raise NotFound("No such template.", code="template_not_found")
    template.active = False
    ctx.session.flush()
    return template


def add_closure(ctx: Ctx, *, day: date, reason: str, department_code: str | None = None) -> Closure:
    """A holiday: publishing from templates skips the day (the institution's, or one department's)."""
    institution_id = _scope(ctx)
    department_id = _department(ctx, institution_id, department_code).id if department_code else ""
    reason = " ".join((reason or "").split())
    if not reason or len(reason) > 200:
        raise _invalid("reason", "reason_required", "Say why (at most 200 characters).")
    closure = Closure(id=ids.new_id(), institution_id=institution_id, department_id=department_id, day=day,
                      reason=reason)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(closure)
    except IntegrityError:
        raise Conflict("This day is closed already.", code="closure_exists") from None
    return closure


def _new_session(ctx: Ctx, *, institution_id: str, department, day: date, shape: Shape, doctor: str,  # noqa: ANN001
                 template_id: str | None) -> ClinicSession | None:
    start, end = _check_shape(shape)
    starts_at, ends_at = at_china(day, start), at_china(day, end)
    if repo.session_at(ctx.session, department.id, doctor, starts_at) is not None:
        return None
    row = ClinicSession(id=ids.new_id(), institution_id=institution_id, department_id=department.id,
                        department_code=department.code, doctor=doctor, day=day, starts_at=starts_at,
                        ends_at=ends_at, category=shape.category, fee_fen=shape.fee_fen,
                        period_minutes=shape.period_minutes,
                        referral_release_at=starts_at - timedelta(hours=shape.referral_release_hours),
                        status="open", template_id=template_id)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(row)
            ctx.session.flush()
    except IntegrityError:  # published at the same moment by another request
        return None
    step = timedelta(minutes=shape.period_minutes)
    moment = starts_at
    periods = []
    while moment + step <= ends_at:
        periods.append(Period(session_id=row.id, starts_at=moment, ends_at=moment + step,
                              **{f"quota_{p}": getattr(shape, f"quota_{p}") for p in POOLS}))
        moment += step
    if not periods:
        raise _invalid("period_minutes", "period_invalid", "The session is shorter than one period.")
    ctx.session.add_all(periods)
    _event(ctx, session_id=row.id, action="publish", to_status="open",
           reason=f"template {template_id}" if template_id else "one-off session")
    ctx.session.flush()
    return row


def create_session(ctx: Ctx, *, department_code: str, day: date, shape: Shape, doctor: str = "",
                   replace_existing: bool = False) -> ClinicSession:
    """A one-off session (an override of the weekly template for that day, with ``replace_existing``:
    the session published at the same start is withdrawn, if nobody has booked it)."""
    institution_id = _scope(ctx)
    department = _department(ctx, institution_id, department_code)
    if day < china_today():
        raise _invalid("day", "day_in_past", "Sessions are published for today or later.")
    doctor = _doctor(doctor)
    start, _ = _check_shape(shape)
    existing = repo.session_at(ctx.session, department.id, doctor, at_china(day, start))
    if existing is not None:
        if not replace_existing:
            raise Conflict("A session starts at this time already.", code="session_exists")
        _withdraw(ctx, existing)
    made = _new_session(ctx, institution_id=institution_id, department=department, day=day, shape=shape,
                        doctor=doctor, template_id=None)
    if made is None:
        raise Conflict("A session starts at this time already.", code="session_exists")
    return made


def _withdraw(ctx: Ctx, row: ClinicSession) -> None:
    if any(p.taken for p in repo.periods_of(ctx.session, row.id)) or repo.live_bookings_of_session(ctx.session,
                                                                                                    row.id):
        raise Conflict("The session has bookings: suspend it instead (its bookings are cancelled and told).",
                       code="session_has_bookings")
    for period in repo.periods_of(ctx.session, row.id):
        ctx.session.delete(period)
    ctx.session.flush()
    _event(ctx, session_id=row.id, action="withdraw", from_status=row.status, reason="replaced by a one-off session")
    ctx.session.delete(row)
    ctx.session.flush()


def publish(ctx: Ctx, first: date, last: date) -> list[ClinicSession]:
    """Sessions from the institution's weekly templates for each day from ``first`` to ``last``,
    skipping closed days and sessions already published (publishing twice changes nothing)."""
    institution_id = _scope(ctx)
    if last < first or (last - first).days > 92:
        raise _invalid("last", "range_invalid", "Publish at most 93 days at once, the last day not before the first.")
    first = max(first, china_today())
    closed = {(c.day, c.department_id) for c in repo.closures(ctx.session, institution_id, first, last)}
    made = []
    templates = repo.templates(ctx.session, institution_id)
    day = first
    while day <= last:
        for t in templates:
            if t.weekday != day.weekday() or (day, "") in closed or (day, t.department_id) in closed:
                continue
            shape = Shape(**{f.name: getattr(t, f.name) for f in fields(Shape)})
            department = _DepartmentRef(t.department_id, t.department_code)
            row = _new_session(ctx, institution_id=institution_id, department=department, day=day, shape=shape,
                               doctor=t.doctor, template_id=t.id)
            if row is not None:
                made.append(row)
        day += timedelta(days=1)
    return made


@dataclass(frozen=True)
class _DepartmentRef:
    id: str
    code: str


def week(ctx: Ctx, first: date, days: int = 7) -> list[ClinicSession]:
    """The institution's sessions from ``first`` on, for the scheduler."""
    return repo.sessions_of_institution(ctx.session, _scope(ctx), first, first + timedelta(days=days - 1))


# -- reading the schedule -------------------------------------------------------------------------

def pool_for(ctx: Ctx) -> str:
    """The quota a caller draws from: a family doctor's referral, a kiosk, the window (clerks and
    hospital systems at the counter), or online (residents' website and apps)."""
    actor = ctx.actor
    if Role.FAMILY_DOCTOR.value in actor.roles:
        return "referral"
    if actor.channel == Channel.KIOSK:
        return "kiosk"
    if actor.kind in ("staff", "machine", "system"):
        return "window"
    return "online"


@dataclass(frozen=True)
class SessionView:
    session: ClinicSession
    free: int
    institution_name: str | None


def search(ctx: Ctx, *, first: date, last: date, institution_id: str | None = None,
           department_code: str | None = None, doctor: str | None = None, limit: int = 100,
           now: datetime | None = None) -> list[SessionView]:
    """Open sessions from ``first`` to ``last`` with the places the caller could still take."""
    now = now or utcnow()
    if last < first or (last - first).days > 62:
        raise _invalid("date_to", "range_invalid", "Search at most 63 days, the last day not before the first.")
    rows = repo.search_sessions(ctx.session, first=first, last=last, institution_id=institution_id,
                                department_code=department_code, doctor=doctor, limit=limit)
    free = repo.free_totals(ctx.session, [r.id for r in rows], pool_for(ctx), now)
    names = {i: inst.name for i, inst in institutions.institutions_by_id(
        ctx.session, sorted({r.institution_id for r in rows})).items()}
    return [SessionView(r, free.get(r.id, 0), names.get(r.institution_id)) for r in rows]


def get_session(ctx: Ctx, session_id: str) -> ClinicSession:
    row = repo.clinic_session(ctx.session, session_id)
    if row is None:
        raise NotFound("No such session.", code="session_not_found")
    return row


def free_of(ctx: Ctx, row: ClinicSession, period: Period, pool: str, now: datetime) -> int:
    own = getattr(period, f"quota_{pool}") - getattr(period, f"used_{pool}")
    if pool != "referral" and row.referral_release_at <= now:
        own += period.quota_referral - period.used_referral
    return max(0, own) if period.starts_at > now and row.status == "open" else 0


def periods(ctx: Ctx, row: ClinicSession, now: datetime | None = None) -> list[tuple[Period, int]]:
    """The session's periods with the places the caller could take in each."""
    now = now or utcnow()
    pool = pool_for(ctx)
    return [(p, free_of(ctx, row, p, pool, now)) for p in repo.periods_of(ctx.session, row.id)]


def get_period(ctx: Ctx, period_id: int, now: datetime | None = None) -> tuple[Period, ClinicSession, int]:
    """One period with its session and the places the caller could take in it (a FHIR Slot)."""
    period = repo.period(ctx.session, period_id)
    row = repo.clinic_session(ctx.session, period.session_id) if period is not None else None
    if period is None or row is None:
        raise NotFound("No such period.", code="period_not_found")
    return period, row, free_of(ctx, row, period, pool_for(ctx), now or utcnow())


@dataclass(frozen=True)
class Offer:
    period_id: int
    session_id: str
    starts_at: datetime
    doctor: str
    department_code: str


def next_free(ctx: Ctx, row: ClinicSession, *, pool: str | None = None, after: datetime | None = None,
              exclude_session: bool = False, limit: int = 3) -> list[Offer]:
    """The next periods with a place in the same department (and with the same doctor first)."""
    after = max(after or utcnow(), utcnow())
    pool = pool or pool_for(ctx)
    found = repo.next_free(ctx.session, department_id=row.department_id, doctor=row.doctor or None, pool=pool,
                           after=after, exclude_session=row.id if exclude_session else None, limit=limit)
    if len(found) < limit and row.doctor:
        seen = {p.id for p, _ in found}
        found += [(p, s) for p, s in repo.next_free(ctx.session, department_id=row.department_id, doctor=None,
                                                    pool=pool, after=after,
                                                    exclude_session=row.id if exclude_session else None,
                                                    limit=limit) if p.id not in seen][:limit - len(found)]
    return [Offer(p.id, s.id, p.starts_at, s.doctor, s.department_code) for p, s in found]


def _offers_json(offers: list[Offer]) -> list[dict]:
    return [{"period_id": o.period_id, "session_id": o.session_id, "starts_at": o.starts_at.isoformat(),
             "doctor": o.doctor, "department_code": o.department_code} for o in offers]


# -- who is booked --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Patient:
    """The person a booking is for: their card, their master-index id, and who books for them."""

    card: Card
    person_id: str
    booked_by: str | None  # the guardian's person id when a resident books for a family member


def patient_for_resident(ctx: Ctx, member: str | None) -> Patient:
    """The resident themself, or a family member they guard (any other card: 404 card_not_found)."""
    me = mpi.resolve(ctx, ctx.actor.id)
    if member:
        try:
            card = cards.get_card(ctx, member)
        except (NotFound, Invalid):
            raise NotFound("No card with this EHC ID.", code="card_not_found") from None
        if cards.guardian_binding(ctx, me, card) is None:
            raise NotFound("No card with this EHC ID.", code="card_not_found")
        return Patient(card, mpi.resolve(ctx, card.person_id).id, me.id)
    card = cards.card_of_person(ctx, me)
    if card is None:
        raise NotFound("No card with this EHC ID.", code="card_not_found")
    return Patient(card, me.id, None)


def patient_for_staff(ctx: Ctx, ehc_id: str) -> Patient:
    """A card a clerk, kiosk or hospital system books for (the card is shown at the desk)."""
    card = cards.get_card(ctx, ehc_id)
    person = mpi.resolve(ctx, card.person_id)
    return Patient(card, person.id, None)


# -- booking --------------------------------------------------------------------------------------

def _reference() -> str:
    return "A" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(8))


def _event(ctx: Ctx, *, action: str, booking: Booking | None = None, session_id: str | None = None,
           from_status: str | None = None, to_status: str | None = None, reason: str | None = None,
           period_id: int | None = None) -> Event:
    actor = ctx.actor
    row = Event(booking_id=booking.id if booking else None,
                session_id=booking.session_id if booking else session_id, action=action,
                from_status=from_status, to_status=to_status,
                period_id=period_id if period_id is not None else (booking.period_id if booking else None),
                actor_kind=actor.kind, actor_id=actor.id, operator=actor.operator,
                institution_id=actor.institution_id, channel=str(actor.channel),
                reason=(reason or None) and reason[:300], source_index=_source_index(ctx), at=utcnow())
    ctx.session.add(row)
    return row


def _source_index(ctx: Ctx) -> str | None:
    return ctx.vault.blind("appointments.source", ctx.address) if ctx.address else None


def _change(ctx: Ctx, booking: Booking, action: str, to: str, reason: str | None = None) -> None:
    before = booking.status
    booking.status = to
    booking.updated_at = utcnow()
    _event(ctx, action=action, booking=booking, from_status=before, to_status=to, reason=reason)


def _check_burst(ctx: Ctx, rules: Rules, now: datetime) -> None:
    """A burst of holds from one account (a script racing for specialist numbers) is refused, and the
    refusal is an event of its own (the scalping report reads them)."""
    actor = ctx.actor  # staff and hospital systems book all day long, accountable and rate-limited as callers
    if actor.kind != "resident" or not actor.id or rules.holds_per_burst <= 0:
        return
    minutes = int(BURST_WINDOW.total_seconds() // 60)
    since = now - BURST_WINDOW
    source = _source_index(ctx)
    if repo.count_actor_events(ctx.session, actor.kind, actor.id, "hold", since) >= rules.holds_per_burst:
        limit, rule, whom = rules.holds_per_burst, "holds_per_burst", "one account"
    elif (source is not None and rules.holds_per_address_burst > 0
          and repo.count_source_events(ctx.session, source, "hold", since) >= rules.holds_per_address_burst):
        limit, rule, whom = rules.holds_per_address_burst, "holds_per_address_burst", "one address"
    else:
        return
    _event(ctx, action="refused", reason=f"booking_burst: more than {limit} holds in {minutes} minutes from {whom}")
    # The refusal's event outlives the failing request (kit.lasting): the scalping report reads them.
    keep_and_raise(ctx.session, BookingBurst(f"At most {limit} bookings in {minutes} minutes from {whom}.",
                                             rule=rule, until=(now + BURST_WINDOW).isoformat()))


def _check_rules(ctx: Ctx, rules: Rules, patient: Patient, row: ClinicSession, now: datetime) -> None:
    person = patient.person_id
    if ctx.actor.channel in ONLINE_CHANNELS and rules.no_shows > 0:
        missed = repo.events_for_person(ctx.session, person, "no_show",
                                        now - timedelta(days=rules.no_show_window_days))
        if len(missed) >= rules.no_shows:
            until = missed[-1].at + timedelta(days=rules.no_show_suspension_days)
            if until > now:
                raise LimitReached(
                    f"{len(missed)} missed appointments in {rules.no_show_window_days} days: online booking is "
                    f"suspended until {in_china(until):%Y-%m-%d}. The window can still book.",
                    code="no_show_suspended", rule="no_shows", until=until.isoformat())
    if ctx.actor.channel in ONLINE_CHANNELS and rules.cancellations > 0:
        since = now - timedelta(days=rules.cancellation_window_days)
        cancelled = repo.events_for_person(ctx.session, person, "cancel", since)
        if len(cancelled) >= rules.cancellations:
            until = cancelled[0].at + timedelta(days=rules.cancellation_window_days)
            raise LimitReached(f"{len(cancelled)} cancellations in {rules.cancellation_window_days} days.",
                               code="cancellation_limit", rule="cancellations", until=until.isoformat())
    if repo.live_in_session(ctx.session, row.id, person) is not None:
        raise Conflict("This person has a booking in this session already.", code="already_booked")
    if repo.count_outstanding(ctx.session, person, now) >= rules.outstanding:
        raise LimitReached(f"At most {rules.outstanding} outstanding bookings a person.", code="outstanding_limit",
                           rule="outstanding")
    if repo.count_in_department_day(ctx.session, person, row.department_id, row.day) >= rules.per_department_per_day:
        raise LimitReached(f"At most {rules.per_department_per_day} booking(s) a person per department and day.",
                           code="department_day_limit", rule="per_department_per_day")


def _open_period(ctx: Ctx, period_id: int, now: datetime) -> tuple[Period, ClinicSession]:
    period = repo.period(ctx.session, period_id) if isinstance(period_id, int) else None
    if period is None:
        raise NotFound("No such period.", code="period_not_found")
    row = repo.clinic_session(ctx.session, period.session_id)
    if row.status != "open":
        raise Conflict("This session is suspended (停诊).", code="session_suspended")
    if period.starts_at <= now:
        raise _invalid("period_id", "period_in_past", "This period has begun or is over.")
    return period, row


def _take(ctx: Ctx, period: Period, row: ClinicSession, pool: str, now: datetime) -> str | None:
    """Take a place for a caller of ``pool``: their own quota, else the released referral quota.
    Holds past their time in this period are expired first when nothing is left."""
    for attempt in range(2):
        if repo.take_place(ctx.session, period.id, pool):
            return pool
        if pool != "referral" and row.referral_release_at <= now and repo.take_place(ctx.session, period.id,
                                                                                    "referral"):
            return "referral"
        if attempt == 0 and not _expire(ctx, repo.due_holds(ctx.session, now, period.id), offer=False):
            break
    return None


def _full(ctx: Ctx, row: ClinicSession, pool: str) -> PeriodFull:
    return PeriodFull("No place is left in this period for your channel.",
                      next_free=_offers_json(next_free(ctx, row, pool=pool)))


def _check_card(card: Card) -> None:
    if card.status != CardStatus.NORMAL:
        raise Conflict(f"This card's status is {card.status}: it cannot be booked with.", code="card_not_active")


def _check_terminal(ctx: Ctx, row: ClinicSession, terminal_id: str | None) -> str | None:
    if ctx.actor.channel == Channel.KIOSK and not terminal_id:
        raise _invalid("terminal_id", "terminal_required", "A kiosk booking names the kiosk's terminal id.")
    if terminal_id is not None and not institutions.terminal_registered(ctx.session, row.institution_id,
                                                                          terminal_id):
        raise _invalid("terminal_id", "terminal_unknown", "The institution has registered no such terminal.")
    return terminal_id


def book(ctx: Ctx, period_id: int, patient: Patient, *, confirm: bool = False, terminal_id: str | None = None,
         now: datetime | None = None) -> Booking:
    """Hold a place for ``patient`` (confirmed at once with ``confirm``: the window, a kiosk). Raises
    ``period_full`` (409, with the next free periods), ``already_booked``, a rule's refusal, ..."""
    now = now or utcnow()
    period, row = _open_period(ctx, period_id, now)
    if ctx.actor.institution_id and ctx.actor.kind in ("staff", "machine") and row.institution_id != ctx.actor.institution_id:
        raise NotFound("No such period.", code="period_not_found")  # another institution's: out of reach
    return _book(ctx, period, row, patient, pool_for(ctx), confirm=confirm, terminal_id=terminal_id, now=now)


def _book(ctx: Ctx, period: Period, row: ClinicSession, patient: Patient, pool: str, *, confirm: bool,
          terminal_id: str | None, now: datetime, note: str | None = None) -> Booking:
    """The one booking path (the residents', the desk's, a referral's): card, terminal, burst and the
    person's limits, the booking and its events, the place taken last from ``pool``."""
    _check_card(patient.card)
    terminal_id = _check_terminal(ctx, row, terminal_id)
    rules = rules_for(ctx, row.institution_id)
    _check_burst(ctx, rules, now)
    dialect.serialise(ctx.session, f"appointments:person:{patient.person_id}")
    _check_rules(ctx, rules, patient, row, now)
    with _one_per_session(), ctx.session.begin_nested():
        booking = Booking(id=ids.new_id(), reference=_reference(), session_id=row.id, period_id=period.id,
                          institution_id=row.institution_id, person_id=patient.person_id,
                          ehc_id=patient.card.ehc_id, booked_by=patient.booked_by, status="held", pool=pool,
                          channel=str(ctx.actor.channel), terminal_id=terminal_id,
                          hold_expires_at=now + timedelta(minutes=rules.hold_minutes), created_at=now,
                          updated_at=now)
        ctx.session.add(booking)
        ctx.session.flush()
    held = _event(ctx, action="hold", booking=booking, to_status="held")
    _audit(ctx, patient.person_id, BOOK_PURPOSE)
    if confirm:
        _confirm(ctx, booking, now)
    ctx.session.flush()
    # The place is taken last: its period's row stays locked until commit (PostgreSQL), so everything
    # else (the texts, the audit line) is done before, and a hot period is held only for the commit.
    taken = _take(ctx, period, row, pool, now)
    if taken is None:
        raise _full(ctx, row, pool)  # the request's transaction rolls back: the booking was never made
    booking.pool = taken
    held.reason = (f"{taken} quota" + (f", terminal {terminal_id}" if terminal_id else "")
                   + (f", {note}" if note else ""))[:300]
    ctx.session.flush()
    return booking


@contextmanager
def _one_per_session() -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise Conflict("This person has a booking in this session already.", code="already_booked") from None


def _audit(ctx: Ctx, person_id: str, purpose: str) -> None:
    """Staff and systems acting on a resident's bookings leave a line in the resident's access log."""
    audit.record_access(ctx, person_id, "change", purpose)


def _confirm(ctx: Ctx, booking: Booking, now: datetime) -> None:
    if booking.status != "held":
        raise Conflict(f"This booking is {booking.status}, not held.", code="booking_not_held")
    if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        _expire(ctx, [booking])
        raise Conflict("The hold expired before it was confirmed; the place was given back.", code="hold_expired")
    _change(ctx, booking, "confirm", "booked")
    booking.hold_expires_at = None
    entry = repo.entry_of_booking(ctx.session, booking.id)
    if entry is not None:
        entry.status = "booked"
    _notify(ctx, booking, "confirmed")


def confirm(ctx: Ctx, booking: Booking, now: datetime | None = None) -> Booking:
    _confirm(ctx, booking, now or utcnow())
    ctx.session.flush()
    return booking


def _cutoff(ctx: Ctx, booking: Booking, period: Period, now: datetime) -> None:
    rules = rules_for(ctx, booking.institution_id)
    if ctx.actor.kind == "resident" and period.starts_at - timedelta(minutes=rules.cutoff_minutes) <= now:
        raise Conflict(f"Bookings are cancelled or moved online until {rules.cutoff_minutes} minutes before the "
                       "period; ask the hospital's window.", code="cutoff_passed", rule="cutoff_minutes")


def _release(ctx: Ctx, booking: Booking, *, offer: bool = True) -> None:
    repo.give_back(ctx.session, booking.period_id, booking.pool)
    if offer:
        offer_next(ctx, booking.period_id, booking.pool)


def cancel(ctx: Ctx, booking: Booking, reason: str | None = None, now: datetime | None = None) -> Booking:
    now = now or utcnow()
    if booking.status not in ("held", "booked"):
        raise Conflict(f"This booking is {booking.status}: nothing to cancel.", code="booking_not_live")
    period = repo.period(ctx.session, booking.period_id)
    _cutoff(ctx, booking, period, now)
    _change(ctx, booking, "cancel", "cancelled", reason or "cancelled")
    _leave_waitlist_of(ctx, booking)
    _release(ctx, booking)
    _notify(ctx, booking, "cancelled")
    _audit(ctx, booking.person_id, BOOK_PURPOSE)
    ctx.session.flush()
    return booking


def move(ctx: Ctx, booking: Booking, period_id: int, now: datetime | None = None) -> Booking:
    """Move a live booking to another period of the same department (keeping its reference)."""
    now = now or utcnow()
    if booking.status not in ("held", "booked"):
        raise Conflict(f"This booking is {booking.status}: it cannot be moved.", code="booking_not_live")
    old = repo.period(ctx.session, booking.period_id)
    _cutoff(ctx, booking, old, now)
    period, row = _open_period(ctx, period_id, now)
    old_session = repo.clinic_session(ctx.session, booking.session_id)
    if row.department_id != old_session.department_id or period.id == old.id:
        raise _invalid("period_id", "move_invalid", "A booking moves to another period of the same department.")
    dialect.serialise(ctx.session, f"appointments:person:{booking.person_id}")
    pool = pool_for(ctx) if booking.pool != "referral" else "referral"
    with _one_per_session():
        with ctx.session.begin_nested():
            taken = _take(ctx, period, row, pool, now)
            if taken is None:
                raise _full(ctx, row, pool)
            old_pool, old_period = booking.pool, booking.period_id
            booking.period_id, booking.session_id, booking.pool = period.id, row.id, taken
            booking.updated_at = now
            ctx.session.flush()
    repo.give_back(ctx.session, old_period, old_pool)
    _event(ctx, action="move", booking=booking, from_status=booking.status, to_status=booking.status,
           reason=f"from period {old_period}", period_id=period.id)
    offer_next(ctx, old_period, old_pool)
    _notify(ctx, booking, "moved")
    _audit(ctx, booking.person_id, BOOK_PURPOSE)
    ctx.session.flush()
    return booking


# -- a family doctor's referral -------------------------------------------------------------------

REFERRAL_HORIZON = timedelta(days=14)
REFERRAL_TRIES = 5  # periods tried when racing bookings take the first ones' last referral places


class NoReferralPlace(Conflict):
    code = "no_referral_place"
    title = "No referral place left"


class ReferralTicket(Protocol):
    """What a referral booking needs. ``family_doctors.service.ReferralTicket`` has this shape; a
    protocol, so that the appointments domain needs nothing of the family doctors' (``ehc.wiring``
    connects the two)."""

    @property
    def referral_id(self) -> str: ...
    @property
    def person_id(self) -> str: ...
    @property
    def from_team_id(self) -> str: ...
    @property
    def from_institution_id(self) -> str: ...
    @property
    def to_institution_id(self) -> str: ...
    @property
    def department_code(self) -> str: ...
    @property
    def reason(self) -> str: ...


def book_referral(ctx: Ctx, ticket: ReferralTicket, now: datetime | None = None) -> str:
    """Book a family doctor's referral into the receiving hospital's referral quota; the booking's
    reference. The first period from now to ``REFERRAL_HORIZON`` of the ticket's hospital and
    department with a referral place left is booked for the referred resident through the one booking
    path (their limits, the place taken with the conditional update), confirmed, carrying the referral.
    A period whose last place a racing booking took is left for the next one; when none has a place:
    409 ``no_referral_place``, and nothing of the attempt stays (savepoints, the caller's transaction)."""
    now = now or utcnow()
    person = mpi.resolve(ctx, ticket.person_id)
    card = cards.card_of_person(ctx, person)
    if card is None:
        raise NotFound("The referred resident has no card to book with.", code="card_not_found")
    patient = Patient(card, person.id, None)
    until = now + REFERRAL_HORIZON
    found = repo.referral_places(ctx.session, institution_id=ticket.to_institution_id,
                                 department_code=ticket.department_code, after=now, until=until,
                                 first_day=in_china(now).date(), last_day=in_china(until).date(),
                                 limit=REFERRAL_TRIES)
    for period, row in found:
        try:
            with ctx.session.begin_nested():
                # Held first, confirmed once the place is ours: a period lost to a race texts nobody.
                booking = _book(ctx, period, row, patient, "referral", confirm=False, terminal_id=None, now=now,
                                note=f"referral {ticket.referral_id} from team {ticket.from_team_id}")
        except PeriodFull:
            continue
        booking.referral_id, booking.referral_team_id = ticket.referral_id, ticket.from_team_id
        booking.referral_from_institution_id = ticket.from_institution_id
        booking.referral_reason = ticket.reason[:200]
        _confirm(ctx, booking, now)
        ctx.session.flush()
        return booking.reference
    raise NoReferralPlace(f"No period of department {ticket.department_code} at this hospital has a referral place "
                          f"in the next {REFERRAL_HORIZON.days} days. Ask the hospital, or refer elsewhere.",
                          department_code=ticket.department_code, horizon_days=REFERRAL_HORIZON.days)


# -- the resident's view --------------------------------------------------------------------------

def _people_of(ctx: Ctx) -> list[str]:
    me = mpi.resolve(ctx, ctx.actor.id)
    people = [me.id]
    card = cards.card_of_person(ctx, me)
    if card is not None:
        people += [mpi.resolve(ctx, b.member_person_id).id for b, _ in cards.family_of(ctx, card.ehc_id)]
    return people


def my_bookings(ctx: Ctx) -> list[Booking]:
    """The resident's bookings and those of the family members they guard, newest period first."""
    return repo.bookings_of(ctx.session, _people_of(ctx))


def my_booking(ctx: Ctx, reference: str) -> Booking:
    booking = repo.booking_by_reference(ctx.session, (reference or "").strip().upper())
    if booking is None or mpi.resolve(ctx, booking.person_id).id not in _people_of(ctx):
        raise _booking_not_found()
    return booking


def my_waitlist(ctx: Ctx) -> list[WaitlistEntry]:
    return repo.waitlist_of(ctx.session, _people_of(ctx))


def staff_booking(ctx: Ctx, reference: str) -> Booking:
    """A booking at the caller's institution (another institution's: not found)."""
    booking = repo.booking_by_reference(ctx.session, (reference or "").strip().upper())
    if booking is None or booking.institution_id != _scope(ctx):
        raise _booking_not_found()
    audit.record_access(ctx, booking.person_id, "read", BOOK_PURPOSE)
    return booking


def staff_bookings_of_card(ctx: Ctx, ehc_id: str) -> list[Booking]:
    """A card holder's bookings at the caller's institution (the person and anyone merged into them),
    newest period first; the look is recorded in the holder's access log."""
    card = cards.get_card(ctx, ehc_id)
    person = mpi.resolve(ctx, card.person_id)
    scope = _scope(ctx)
    found = [b for b in repo.bookings_of(ctx.session, [person.id]) if b.institution_id == scope]
    audit.record_access(ctx, person.id, "read", BOOK_PURPOSE)
    return found


def booking_by_id(ctx: Ctx, booking_id: str) -> Booking:
    booking = repo.booking(ctx.session, booking_id)
    if booking is None:
        raise _booking_not_found()
    return booking


def booking_by_reference(ctx: Ctx, reference: str) -> Booking:
    booking = repo.booking_by_reference(ctx.session, (reference or "").strip().upper())
    if booking is None:
        raise _booking_not_found()
    return booking


def period_of(ctx: Ctx, booking: Booking) -> Period:
    return repo.period(ctx.session, booking.period_id)


def history(ctx: Ctx, booking: Booking) -> list[Event]:
    return repo.events_of_booking(ctx.session, booking.id)


@dataclass(frozen=True)
class BookingView:
    booking: Booking
    period: Period
    session: ClinicSession
    institution_name: str | None


def view(ctx: Ctx, bookings: list[Booking]) -> list[BookingView]:
    names = {i: inst.name for i, inst in institutions.institutions_by_id(
        ctx.session, sorted({b.institution_id for b in bookings})).items()}
    return [BookingView(b, repo.period(ctx.session, b.period_id), repo.clinic_session(ctx.session, b.session_id),
                        names.get(b.institution_id)) for b in bookings]


def todays_list(ctx: Ctx, department_code: str | None = None, day: date | None = None) -> list[Booking]:
    """A department's bookings today, for the clerk (booked, arrived, no-show)."""
    return repo.todays_bookings(ctx.session, _scope(ctx), day or china_today(), department_code)


# -- waitlist -------------------------------------------------------------------------------------

def join_waitlist(ctx: Ctx, period_id: int, patient: Patient, now: datetime | None = None) -> WaitlistEntry:
    """Join a full period's waitlist (候补): a freed place is offered to the first in line."""
    now = now or utcnow()
    period, row = _open_period(ctx, period_id, now)
    _check_card(patient.card)
    if free_of(ctx, row, period, pool_for(ctx), now) > 0:
        raise Conflict("This period has a place: book it.", code="period_has_places")
    rules = rules_for(ctx, row.institution_id)
    dialect.serialise(ctx.session, f"appointments:person:{patient.person_id}")
    _check_rules(ctx, rules, patient, row, now)
    entry = WaitlistEntry(period_id=period.id, person_id=patient.person_id, ehc_id=patient.card.ehc_id,
                          booked_by=patient.booked_by, channel=str(ctx.actor.channel), status="waiting",
                          created_at=now)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(entry)
            ctx.session.flush()
    except IntegrityError:
        raise Conflict("This person is on this period's waitlist already.", code="already_waiting") from None
    _event(ctx, action="waitlist_join", session_id=row.id, period_id=period.id, reason=f"entry {entry.id}")
    return entry


def leave_waitlist(ctx: Ctx, entry_id: int) -> WaitlistEntry:
    entry = repo.waitlist_entry(ctx.session, entry_id) if isinstance(entry_id, int) else None
    if entry is None or mpi.resolve(ctx, entry.person_id).id not in _people_of(ctx):
        raise NotFound("No such waitlist entry.", code="waitlist_entry_not_found")
    if entry.status == "waiting":
        entry.status = "left"
        _event(ctx, action="waitlist_leave", period_id=entry.period_id, reason=f"entry {entry.id}")
    ctx.session.flush()
    return entry


def position(ctx: Ctx, entry: WaitlistEntry) -> int | None:
    return repo.position(ctx.session, entry) if entry.status == "waiting" else None


def offer_next(ctx: Ctx, period_id: int, pool: str, now: datetime | None = None) -> Booking | None:
    """A place of ``pool`` was just given back in this period: offer it to the first in line, held
    for them (the hold's minutes), and tell them. In the same transaction as the release, so the
    place cannot be taken by anyone else in between."""
    now = now or utcnow()
    period = repo.period(ctx.session, period_id)
    row = repo.clinic_session(ctx.session, period.session_id)
    if row.status != "open" or period.starts_at <= now:
        return None
    rules = rules_for(ctx, row.institution_id)
    while (entry := repo.first_waiting(ctx.session, period_id)) is not None:
        if not repo.take_place(ctx.session, period_id, pool):
            return None
        booking = Booking(id=ids.new_id(), reference=_reference(), session_id=row.id, period_id=period_id,
                          institution_id=row.institution_id, person_id=entry.person_id, ehc_id=entry.ehc_id,
                          booked_by=entry.booked_by, status="held", pool=pool, channel=entry.channel,
                          hold_expires_at=now + timedelta(minutes=rules.hold_minutes), from_waitlist=True,
                          created_at=now, updated_at=now)
        try:
            with ctx.session.begin_nested():
                ctx.session.add(booking)
                ctx.session.flush()
        except IntegrityError:  # they booked this session some other way meanwhile
            repo.give_back(ctx.session, period_id, pool)
            entry.status = "left"
            continue
        entry.status, entry.booking_id = "offered", booking.id
        _event(ctx, action="waitlist_offer", booking=booking, to_status="held", reason=f"entry {entry.id}")
        _notify(ctx, booking, "offer")
        ctx.session.flush()
        return booking
    return None


def _leave_waitlist_of(ctx: Ctx, booking: Booking) -> None:
    entry = repo.entry_of_booking(ctx.session, booking.id)
    if entry is not None and entry.status == "offered":
        entry.status = "expired"


# -- suspension (停诊) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SuspensionEffect:
    booking: Booking
    offers: list[Offer]


def suspension_effects(ctx: Ctx, session_id: str) -> list[SuspensionEffect]:
    """What suspending the session would do: each live booking it cancels, and the periods offered."""
    row = _own_session(ctx, session_id)
    live = repo.live_bookings_of_session(ctx.session, row.id)
    return [SuspensionEffect(b, next_free(ctx, row, pool=b.pool, exclude_session=True)) for b in live]


def _own_session(ctx: Ctx, session_id: str) -> ClinicSession:
    row = repo.clinic_session(ctx.session, session_id)
    if row is None or row.institution_id != _scope(ctx):
        raise NotFound("No such session.", code="session_not_found")
    return row


def suspend(ctx: Ctx, session_id: str, reason: str) -> list[SuspensionEffect]:
    """Suspend a session (停诊): every live booking is cancelled, its place given back, and its resident
    told with the next free periods; waitlists of its periods end. Nothing is dropped silently."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise _invalid("reason", "reason_required", "Say why the session is suspended.")
    row = _own_session(ctx, session_id)
    if row.status == "suspended":
        raise Conflict("This session is suspended already.", code="session_suspended")
    effects = suspension_effects(ctx, session_id)
    row.status, row.suspended_reason = "suspended", reason[:200]
    _event(ctx, action="suspend", session_id=row.id, from_status="open", to_status="suspended", reason=reason)
    for effect in effects:
        _change(ctx, effect.booking, "suspend_cancel", "cancelled", f"session suspended: {reason}")
        _leave_waitlist_of(ctx, effect.booking)
        _release(ctx, effect.booking, offer=False)
        _notify(ctx, effect.booking, "suspended", offers=effect.offers, reason=reason)
    for period in repo.periods_of(ctx.session, row.id):
        while (entry := repo.first_waiting(ctx.session, period.id)) is not None:
            entry.status = "expired"
            ctx.session.flush()
    ctx.session.flush()
    return effects


# -- check-in by scan -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckedIn:
    booking: Booking
    scene: str
    use_id: int


def check_in(ctx: Ctx, code: str, *, terminal_id: str | None = None, now: datetime | None = None) -> CheckedIn:
    """The resident's QR code scanned at the department: the code is verified (single use), the card
    use recorded under care step 0101011 (booked) or 0101012 (same day), the booking marked arrived."""
    now = now or utcnow()
    institution_id = _scope(ctx)
    _, card = qr.open_code(ctx, (code or "").strip(), now=now)
    person = mpi.resolve(ctx, card.person_id)
    found = repo.live_for_check_in(ctx.session, set(mpi.ids_of(ctx, person)) | {person.id}, institution_id,
                                   in_china(now).date())
    if not found:
        raise NotFound("This card has no booking here today.", code="no_booking_today")
    booking = found[0]
    row = repo.clinic_session(ctx.session, booking.session_id)
    scene = SCENE_SAME_DAY if in_china(booking.created_at).date() == row.day else SCENE_BOOKED
    verified = qr.verify(ctx, code.strip(), qr.Use(scene=scene, channel=str(ctx.actor.channel),
                                                   terminal_id=terminal_id, department=row.department_code), now=now)
    _change(ctx, booking, "arrive", "arrived", f"scan, care step {scene}")
    ctx.session.flush()
    return CheckedIn(booking, scene, verified.use.id)


# -- sweeps (catch up on start) -------------------------------------------------------------------

def _expire(ctx: Ctx, due: list[Booking], *, offer: bool = True) -> int:
    for booking in due:
        _change(ctx, booking, "expire", "expired", "hold not confirmed in time")
        _leave_waitlist_of(ctx, booking)
        _release(ctx, booking, offer=offer)
    ctx.session.flush()
    return len(due)


def expire_holds(ctx: Ctx, now: datetime | None = None) -> int:
    """Every hold past its time gives its place back (offered to the waitlist). Returns how many."""
    now = now or utcnow()
    total = 0
    while due := repo.due_holds(ctx.session, now):
        total += _expire(ctx, due)
    return total


def mark_no_shows(ctx: Ctx, now: datetime | None = None) -> int:
    """Bookings never checked in become no-shows once their period ended (plus a grace)."""
    now = now or utcnow()
    total = 0
    while due := repo.due_no_shows(ctx.session, now - NO_SHOW_GRACE):
        for booking in due:
            _change(ctx, booking, "no_show", "no_show", "not checked in")
        ctx.session.flush()
        total += len(due)
    return total


def send_reminders(ctx: Ctx, now: datetime | None = None) -> int:
    """A reminder the day before: every booked visit starting within the next 24 hours not yet reminded."""
    now = now or utcnow()
    total = 0
    while due := repo.due_reminders(ctx.session, now, now + timedelta(hours=24)):
        for booking in due:
            booking.reminded_at = now
            _notify(ctx, booking, "reminder")
        ctx.session.flush()
        total += len(due)
    return total


@dataclass(frozen=True)
class Swept:
    expired: int
    no_shows: int
    reminders: int


def sweep(ctx: Ctx, now: datetime | None = None) -> Swept:
    """All three sweeps; run on start and then every minute (``ehc appointments sweep``)."""
    now = now or utcnow()
    return Swept(expire_holds(ctx, now), mark_no_shows(ctx, now), send_reminders(ctx, now))


class Sweeper:
    """A daemon thread that runs :func:`sweep` at once (catching up with whatever fell due while the
    process was down) and then every ``interval`` seconds. Several workers may each run one: the
    sweeps take due rows with ``SKIP LOCKED`` on PostgreSQL, and SQLite writers take turns."""

    def __init__(self, db, ctx_for: Callable[[OrmSession], Ctx], interval: float = 60.0) -> None:  # noqa: ANN001
        self.db, self.ctx_for, self.interval = db, ctx_for, interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ehc-appointments-sweeper", daemon=True)

    def start(self) -> Sweeper:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                with self.db.session() as session:
                    sweep(self.ctx_for(session))
            except Exception:  # a database hiccup: the next round tries again
                log.warning("appointments sweeper round failed", exc_info=True)
            if self._stop.wait(self.interval):
                return


def start_sweeper(db, ctx_for: Callable[[OrmSession], Ctx], interval: float = 60.0) -> Sweeper:  # noqa: ANN001
    return Sweeper(db, ctx_for, interval).start()


# -- notifications --------------------------------------------------------------------------------

_TEXTS = {
    "confirmed": ("预约成功", "Booked"),
    "cancelled": ("预约已取消", "Cancelled"),
    "moved": ("预约已改期", "Moved"),
    "reminder": ("就诊提醒（明日）", "Reminder"),
    "offer": ("候补成功，请在{minutes}分钟内确认", "Waitlist place offered: confirm within {minutes} min"),
    "suspended": ("停诊通知，预约已取消", "Session suspended, booking cancelled"),
    "card": ("健康卡已注销，预约已取消", "Card cancelled, booking cancelled"),
}


def message(ctx: Ctx, booking: Booking, kind: str, offers: list[Offer] | None = None) -> str:
    period = repo.period(ctx.session, booking.period_id)
    row = repo.clinic_session(ctx.session, booking.session_id)
    zh, en = _TEXTS[kind]
    minutes = rules_for(ctx, booking.institution_id).hold_minutes
    text = (f"【电子健康卡】{zh.format(minutes=minutes)} {booking.reference} "
            f"{in_china(period.starts_at):%Y-%m-%d %H:%M} {row.department_code} {row.doctor} / "
            f"{en.format(minutes=minutes)}")
    if offers:
        text += " 可改约/Next free: " + ", ".join(f"{in_china(o.starts_at):%m-%d %H:%M}" for o in offers)
    return text


def _notify(ctx: Ctx, booking: Booking, kind: str, *, offers: list[Offer] | None = None,
            reason: str | None = None) -> None:
    """Text the person (or the guardian who booked for them) through the platform's SMS sender."""
    person = mpi.resolve(ctx, booking.booked_by or booking.person_id)
    phone = mpi.demographics(ctx, person, purpose=NOTIFY_PURPOSE).phone
    if phone:
        accounts.send_sms(ctx, phone, message(ctx, booking, kind, offers))
    _event(ctx, action="notify", booking=booking, reason=f"{kind}" + ("" if phone else ": no phone on record"))


# -- statistics -----------------------------------------------------------------------------------

# The booking events that count (docs/statistics.md, source ``booking``); texts sent and refusals do not.
STATISTICS_ACTIONS = ("hold", "confirm", "cancel", "move", "expire", "arrive", "no_show", "suspend_cancel",
                      "card_cancel", "merge_cancel", "waitlist_offer")


def statistics_events(session: OrmSession, after_id: int, limit: int) -> list[dict]:
    """The appointments' source for the statistics pipeline (``wiring`` registers it): each booking
    event after ``after_id``, its kind the action, except that the confirmation of a place offered
    from the waitlist is ``waitlist_book`` (a waitlist success; it is a booking made as well). The
    institution is the booking's hospital (not the actor's), the person id only for the pipeline's
    coarse profile (never stored)."""
    return [{"id": event.id, "at": event.at,
             "kind": "waitlist_book" if event.action == "confirm" and from_waitlist else event.action,
             "channel": event.channel, "institution_id": institution_id, "person_id": person_id,
             "from_status": event.from_status, "to_status": event.to_status}
            for event, institution_id, person_id, from_waitlist
            in repo.booking_events_after(session, after_id, STATISTICS_ACTIONS, limit)]


# -- master index and card registry hooks ---------------------------------------------------------

def move_bookings(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person) -> None:
    """On a merge, the source's bookings and waitlist places go to the target (each recorded, so an
    unmerge brings exactly them back). A live booking in a session where the target holds one too is
    cancelled (one per person and session), its place given back; the unmerge restores it if the
    place is still free."""
    for booking in repo.bookings_of_person_all(ctx.session, source.id):
        if booking.status in LIVE and repo.live_in_session(ctx.session, booking.session_id, target.id) is not None:
            _change(ctx, booking, "merge_cancel", "cancelled", f"duplicate after merge {merge.id}")
            _release(ctx, booking, offer=False)
            mpi.record_move(ctx, merge, "appt_booking_cancel", booking.id)
            continue
        booking.person_id = target.id
        _event(ctx, action="merge", booking=booking, reason=f"merge {merge.id}: {source.id} -> {target.id}")
        ctx.session.flush()
        mpi.record_move(ctx, merge, "appt_booking", booking.id)
    for entry in repo.waiting_of_person(ctx.session, source.id):
        if entry.status in ("waiting", "offered"):
            entry.status = "left"
            mpi.record_move(ctx, merge, "appt_waitlist", str(entry.id))
    ctx.session.flush()


def undo_booking_moves(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person, refs: list[str]) -> None:
    for ref in refs:
        booking = repo.booking(ctx.session, ref)
        if booking is None or booking.person_id != target.id:
            raise Conflict("A booking the merge moved has changed since.", code="unmerge_booking_changed")
        booking.person_id = source.id
        _event(ctx, action="unmerge", booking=booking, reason=f"merge {merge.id} undone")
        ctx.session.flush()


def undo_booking_cancels(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person,
                         refs: list[str]) -> None:
    now = utcnow()
    for ref in refs:
        booking = repo.booking(ctx.session, ref)
        period = repo.period(ctx.session, booking.period_id) if booking else None
        if booking is None or booking.status != "cancelled" or period.starts_at <= now:
            continue
        if repo.take_place(ctx.session, booking.period_id, booking.pool):
            _change(ctx, booking, "unmerge", "booked", f"merge {merge.id} undone")
        else:
            _event(ctx, action="unmerge", booking=booking, reason=f"merge {merge.id} undone; the place was taken")


def undo_waitlist_moves(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person,
                        refs: list[str]) -> None:
    for ref in refs:
        entry = repo.waitlist_entry(ctx.session, int(ref))
        if entry is not None and entry.status == "left":
            entry.status = "waiting"
    ctx.session.flush()


def on_card_transition(ctx: Ctx, change: cards.CardChange) -> None:
    """A cancelled card (death, emigration, a duplicate) has its future bookings cancelled, places
    given back to the waitlist, and its waitlist places ended; the holder (or guardian) is told. A
    lost card keeps its bookings: the holder checks in with the reissued card or at the window. A
    merge moves bookings before the merged card is cancelled (``ehc.wiring`` registers
    ``move_bookings`` first), so nothing is left here to cancel then."""
    if change.status != CardStatus.CANCELLED:
        return
    now = utcnow()
    for booking in repo.future_live_of_person(ctx.session, change.person_id, now):
        _change(ctx, booking, "card_cancel", "cancelled", "card cancelled")
        _leave_waitlist_of(ctx, booking)
        _release(ctx, booking)
        _notify(ctx, booking, "card")
    for entry in repo.waiting_of_person(ctx.session, change.person_id):
        if entry.status == "waiting":
            entry.status = "left"
    ctx.session.flush()


