"""Appointments API: thin. Parse, authorise (auth.py), call service.py, shape the answer."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from ..kit import idempotency
from ..kit.clock import china_today, in_china
from ..kit.context import Ctx
from . import service
from .auth import (
    AppointmentHolder,
    BookingDesk,
    CheckInDesk,
    DayListReader,
    Scheduler,
    ScheduleReader,
)
from .schemas import (
    BookIn,
    BookingOut,
    CancelIn,
    CheckInIn,
    CheckInOut,
    ClosureIn,
    DeskBookIn,
    EffectOut,
    MoveIn,
    OfferOut,
    PeriodOut,
    PublishIn,
    SessionIn,
    SessionOut,
    ShapeIn,
    SuspendIn,
    TemplateIn,
    TemplateOut,
    WaitlistOut,
)

router = APIRouter(tags=["appointments"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
API = "/api/v1/appointments"
ME = "/api/v1/me/appointments"


def _shape(body: ShapeIn) -> service.Shape:
    return service.Shape(**{name: getattr(body, name) for name in ShapeIn.model_fields})


def booking_out(ctx: Ctx, booking: service.Booking, *, history: bool = False) -> BookingOut:
    seen = service.view(ctx, [booking])[0]
    return BookingOut.of(seen.booking, seen.period, seen.session, institution_name=seen.institution_name,
                         history=service.history(ctx, booking) if history else None)


def bookings_out(ctx: Ctx, bookings: list[service.Booking]) -> list[BookingOut]:
    return [BookingOut.of(v.booking, v.period, v.session, institution_name=v.institution_name)
            for v in service.view(ctx, bookings)]


def _offer(o: service.Offer) -> OfferOut:
    return OfferOut(period_id=o.period_id, session_id=o.session_id, starts_at=o.starts_at,
                    local=in_china(o.starts_at).strftime("%Y-%m-%d %H:%M"), doctor=o.doctor,
                    department_code=o.department_code)


def _book_once(ctx: Ctx, key: str | None, route: str, payload: dict, response: Response, do) -> BookingOut:  # noqa: ANN001
    booking, _ = idempotency.run_once(ctx, key, route, payload, response, lambda: (do(), True),
                                      ref=lambda b: b.id, load=lambda ref: service.booking_by_id(ctx, ref))
    return booking_out(ctx, booking)


# -- the public schedule --------------------------------------------------------------------------

@router.get(f"{API}/sessions", response_model=list[SessionOut],
            summary="Search open sessions by institution, department, doctor and dates (free places per session)")
def search(ctx: ScheduleReader, institution_id: Annotated[str | None, Query(max_length=24)] = None,
           department_code: Annotated[str | None, Query(max_length=4)] = None,
           doctor: Annotated[str | None, Query(max_length=64)] = None, date_from: date | None = None,
           date_to: date | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[SessionOut]:
    first = date_from or china_today()
    found = service.search(ctx, first=first, last=date_to or first + timedelta(days=13),
                           institution_id=institution_id, department_code=department_code, doctor=doctor,
                           limit=limit)
    return [SessionOut.of(v.session, free=v.free, institution_name=v.institution_name) for v in found]


@router.get(f"{API}/sessions/{{session_id}}", response_model=SessionOut,
            summary="A session with its periods and the places your channel can take in each")
def get_session(session_id: str, ctx: ScheduleReader) -> SessionOut:
    row = service.get_session(ctx, session_id)
    periods = [PeriodOut.of(p, free) for p, free in service.periods(ctx, row)]
    return SessionOut.of(row, free=sum(p.free for p in periods), periods=periods)


# -- residents ------------------------------------------------------------------------------------

@router.post(ME, response_model=BookingOut, status_code=201,
             summary="Hold a place for me or a family member I guard (confirm within the hold's minutes)")
def hold(body: BookIn, ctx: AppointmentHolder, response: Response, idempotency_key: IdempotencyKey = None) -> BookingOut:
    return _book_once(ctx, idempotency_key, "appointments.hold", body.model_dump(), response,
                      lambda: service.book(ctx, body.period_id, service.patient_for_resident(ctx, body.member)))


@router.get(ME, response_model=list[BookingOut], summary="My bookings and my family members'")
def my_bookings(ctx: AppointmentHolder) -> list[BookingOut]:
    return bookings_out(ctx, service.my_bookings(ctx))


@router.get(f"{ME}/{{reference}}", response_model=BookingOut, summary="One of my bookings, with its history")
def my_booking(reference: str, ctx: AppointmentHolder) -> BookingOut:
    return booking_out(ctx, service.my_booking(ctx, reference), history=True)


@router.post(f"{ME}/{{reference}}/confirm", response_model=BookingOut, summary="Confirm a held booking")
def my_confirm(reference: str, ctx: AppointmentHolder) -> BookingOut:
    return booking_out(ctx, service.confirm(ctx, service.my_booking(ctx, reference)))


@router.post(f"{ME}/{{reference}}/cancel", response_model=BookingOut, summary="Cancel a booking (until the cutoff)")
def my_cancel(reference: str, body: CancelIn, ctx: AppointmentHolder) -> BookingOut:
    return booking_out(ctx, service.cancel(ctx, service.my_booking(ctx, reference), body.reason))


@router.post(f"{ME}/{{reference}}/move", response_model=BookingOut,
             summary="Move a booking to another period of the same department (until the cutoff)")
def my_move(reference: str, body: MoveIn, ctx: AppointmentHolder) -> BookingOut:
    return booking_out(ctx, service.move(ctx, service.my_booking(ctx, reference), body.period_id))


def _waitlist_out(ctx: Ctx, entry: service.WaitlistEntry) -> WaitlistOut:
    reference = service.booking_by_id(ctx, entry.booking_id).reference if entry.booking_id else None
    return WaitlistOut.of(entry, service.position(ctx, entry), reference)


@router.post("/api/v1/me/waitlist", response_model=WaitlistOut, status_code=201,
             summary="Join a full period's waitlist (候补)")
def join_waitlist(body: BookIn, ctx: AppointmentHolder) -> WaitlistOut:
    return _waitlist_out(ctx, service.join_waitlist(ctx, body.period_id, service.patient_for_resident(ctx, body.member)))


@router.get("/api/v1/me/waitlist", response_model=list[WaitlistOut], summary="My places in waitlists")
def my_waitlist(ctx: AppointmentHolder) -> list[WaitlistOut]:
    return [_waitlist_out(ctx, e) for e in service.my_waitlist(ctx)]


@router.post("/api/v1/me/waitlist/{entry_id}/leave", response_model=WaitlistOut, summary="Leave a waitlist")
def leave_waitlist(entry_id: int, ctx: AppointmentHolder) -> WaitlistOut:
    return _waitlist_out(ctx, service.leave_waitlist(ctx, entry_id))


# -- the desk: window clerks, family doctors, hospital systems and kiosks --------------------------

@router.post(f"{API}/bookings", response_model=BookingOut, status_code=201,
             summary="Book for a card at the window, a kiosk (terminal_id) or through the hospital system")
def desk_book(body: DeskBookIn, ctx: BookingDesk, response: Response,
              idempotency_key: IdempotencyKey = None) -> BookingOut:
    return _book_once(ctx, idempotency_key, "appointments.desk", body.model_dump(), response,
                      lambda: service.book(ctx, body.period_id, service.patient_for_staff(ctx, body.ehc_id),
                                           confirm=body.confirm, terminal_id=body.terminal_id))


@router.get(f"{API}/bookings", response_model=list[BookingOut],
            summary="The day's bookings at your institution (a department's, with department_code)")
def day_list(ctx: DayListReader, day: date | None = None,
             department_code: Annotated[str | None, Query(max_length=4)] = None) -> list[BookingOut]:
    return bookings_out(ctx, service.todays_list(ctx, department_code, day))


@router.get(f"{API}/bookings/{{reference}}", response_model=BookingOut, summary="A booking at your institution")
def desk_booking(reference: str, ctx: DayListReader) -> BookingOut:
    return booking_out(ctx, service.staff_booking(ctx, reference), history=True)


@router.post(f"{API}/bookings/{{reference}}/confirm", response_model=BookingOut, summary="Confirm a held booking")
def desk_confirm(reference: str, ctx: BookingDesk) -> BookingOut:
    return booking_out(ctx, service.confirm(ctx, service.staff_booking(ctx, reference)))


@router.post(f"{API}/bookings/{{reference}}/cancel", response_model=BookingOut, summary="Cancel a booking")
def desk_cancel(reference: str, body: CancelIn, ctx: BookingDesk) -> BookingOut:
    return booking_out(ctx, service.cancel(ctx, service.staff_booking(ctx, reference), body.reason))


@router.post(f"{API}/bookings/{{reference}}/move", response_model=BookingOut, summary="Move a booking")
def desk_move(reference: str, body: MoveIn, ctx: BookingDesk) -> BookingOut:
    return booking_out(ctx, service.move(ctx, service.staff_booking(ctx, reference), body.period_id))


@router.post(f"{API}/check-in", response_model=CheckInOut,
             summary="Check in by the resident's dynamic QR code (verifies it, records the card use)")
def check_in(body: CheckInIn, ctx: CheckInDesk) -> CheckInOut:
    done = service.check_in(ctx, body.code, terminal_id=body.terminal_id)
    return CheckInOut(reference=done.booking.reference, status=done.booking.status, scene=done.scene,
                      use_id=done.use_id)


# -- schedulers -----------------------------------------------------------------------------------

@router.get(f"{API}/templates", response_model=list[TemplateOut], summary="Your institution's weekly templates")
def templates(ctx: Scheduler) -> list[TemplateOut]:
    return [TemplateOut.of(t) for t in service.list_templates(ctx)]


@router.post(f"{API}/templates", response_model=TemplateOut, status_code=201, summary="Add a weekly template")
def add_template(body: TemplateIn, ctx: Scheduler) -> TemplateOut:
    return TemplateOut.of(service.add_template(ctx, department_code=body.department_code, weekday=body.weekday,
                                               shape=_shape(body), doctor=body.doctor))


@router.post(f"{API}/templates/{{template_id}}/retire", response_model=TemplateOut,
             summary="Stop publishing from a template (published sessions stay)")
def retire_template(template_id: str, ctx: Scheduler) -> TemplateOut:
    return TemplateOut.of(service.retire_template(ctx, template_id))


@router.post(f"{API}/closures", status_code=201, summary="Close a day (holiday): templates publish nothing")
def add_closure(body: ClosureIn, ctx: Scheduler) -> dict:
    closure = service.add_closure(ctx, day=body.day, reason=body.reason, department_code=body.department_code)
    return {"id": closure.id, "day": closure.day.isoformat(), "reason": closure.reason}


@router.post(f"{API}/publish", response_model=list[SessionOut], summary="Publish sessions from the templates")
def publish(body: PublishIn, ctx: Scheduler) -> list[SessionOut]:
    return [SessionOut.of(s) for s in service.publish(ctx, body.first, body.last)]


@router.post(f"{API}/sessions", response_model=SessionOut, status_code=201,
             summary="Publish a one-off session (or override the template's for that day)")
def add_session(body: SessionIn, ctx: Scheduler) -> SessionOut:
    return SessionOut.of(service.create_session(ctx, department_code=body.department_code, day=body.day,
                                                shape=_shape(body), doctor=body.doctor,
                                                replace_existing=body.replace))


@router.get(f"{API}/schedule", response_model=list[SessionOut], summary="Your institution's sessions, a week")
def schedule(ctx: Scheduler, first: date | None = None, days: Annotated[int, Query(ge=1, le=31)] = 7) -> list[SessionOut]:
    return [SessionOut.of(s) for s in service.week(ctx, first or china_today(), days)]


def _effects(ctx: Ctx, effects: list[service.SuspensionEffect]) -> list[EffectOut]:
    seen = {}
    out = []
    for effect in effects:
        period = seen.setdefault(effect.booking.period_id, service.period_of(ctx, effect.booking))
        out.append(EffectOut(reference=effect.booking.reference, status=effect.booking.status,
                             starts_at=period.starts_at, local=in_china(period.starts_at).strftime("%Y-%m-%d %H:%M"),
                             offers=[_offer(o) for o in effect.offers]))
    return out


@router.get(f"{API}/sessions/{{session_id}}/suspension", response_model=list[EffectOut],
            summary="What suspending the session would do (the bookings it cancels, the periods offered)")
def suspension_preview(session_id: str, ctx: Scheduler) -> list[EffectOut]:
    return _effects(ctx, service.suspension_effects(ctx, session_id))


@router.post(f"{API}/sessions/{{session_id}}/suspend", response_model=list[EffectOut],
             summary="Suspend a session (停诊): its bookings are cancelled, told and offered the next free periods")
def suspend(session_id: str, body: SuspendIn, ctx: Scheduler) -> list[EffectOut]:
    return _effects(ctx, service.suspend(ctx, session_id, body.reason))
