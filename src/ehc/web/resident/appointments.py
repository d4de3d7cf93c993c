"""The resident's appointments: find a session, pick a period, confirm, my appointments (cancel,
move, waitlist). The same service calls as the resident API (``/api/v1/me/appointments``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...appointments import service as appointments
from ...appointments.schemas import CATEGORY_LABELS
from ...institutions.service import DEPARTMENTS
from ...kit.clock import china_today, in_china
from ...kit.context import Ctx
from ...kit.errors import Problem
from ...me import service as me
from .. import forms, i18n
from ..core import PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import ResidentPage, resident_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _local(moment) -> str:  # noqa: ANN001
    return in_china(moment).strftime("%Y-%m-%d %H:%M")


def _department(t: i18n.Translator, code: str) -> str:
    labels = DEPARTMENTS.get(code)
    return f"{code} {labels[1 if t.lang == 'zh' else 0]}" if labels else code


def _booking_row(t: i18n.Translator, seen: appointments.BookingView) -> dict:
    b, s = seen.booking, seen.session
    return {"reference": b.reference, "status": b.status, "status_label": t(f"appointments.status.{b.status}"),
            "when": _local(seen.period.starts_at), "institution": seen.institution_name or s.institution_id,
            "department": _department(t, s.department_code), "doctor": s.doctor, "fee": f"{s.fee_fen / 100:.2f}",
            "live": b.status in ("held", "booked"), "held": b.status == "held",
            "family": b.booked_by is not None, "referral": b.referral_id is not None,
            "referral_reason": b.referral_reason}


def _problem(ctx: Ctx, request: Request, problem: Problem) -> FormState:
    ctx.session.rollback()
    t = i18n.for_request(request)
    state = FormState()
    state.add("", forms.message(t, problem.code, forms.problem_params(problem), problem.detail))
    return state


def _members(ctx: Ctx, t: i18n.Translator) -> list[tuple[str, str]]:
    return [("", t("appointments.for_me"))] + [
        (card.ehc_id, t(f"relations.{binding.relation}")) for binding, card in me.family(ctx) if card is not None]


@router.get("/me/appointments", response_class=HTMLResponse)
def my_appointments(request: Request, ctx: ResidentPage) -> HTMLResponse:
    t = i18n.for_request(request)
    rows = [_booking_row(t, v) for v in appointments.view(ctx, appointments.my_bookings(ctx))]
    waiting = [{"id": w.id, "status": t(f"appointments.waitlist_status.{w.status}"),
                "position": appointments.position(ctx, w), "period_id": w.period_id}
               for w in appointments.my_waitlist(ctx)]
    return resident_page(request, ctx, "me_appointments.html", nav="appointments", rows=rows, waiting=waiting)


@router.get("/me/appointments/find", response_class=HTMLResponse)
def find(request: Request, ctx: ResidentPage, department_code: Annotated[str, Query(max_length=4)] = "",
         day: Annotated[str, Query(max_length=10)] = "") -> HTMLResponse:
    t = i18n.for_request(request)
    first = _day(day) or china_today()
    found = appointments.search(ctx, first=first, last=first + timedelta(days=6),
                                department_code=department_code or None) if department_code else []
    sessions = [{"id": v.session.id, "when": _local(v.session.starts_at), "institution": v.institution_name,
                 "department": _department(t, v.session.department_code), "doctor": v.session.doctor,
                 "category": CATEGORY_LABELS[v.session.category][1 if t.lang == "zh" else 0],
                 "fee": f"{v.session.fee_fen / 100:.2f}", "free": v.free} for v in found]
    departments = [(code, f"{code} {labels[1 if t.lang == 'zh' else 0]}") for code, labels in DEPARTMENTS.items()]
    return resident_page(request, ctx, "me_appointments_find.html", nav="appointments", sessions=sessions,
                         departments=departments, department_code=department_code, day=first.isoformat(),
                         searched=bool(department_code))


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _session_page(request: Request, ctx: Ctx, session_id: str, state: FormState | None = None,
                  status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    row = appointments.get_session(ctx, session_id)
    periods = [{"id": p.id, "when": in_china(p.starts_at).strftime("%H:%M"), "free": free}
               for p, free in appointments.periods(ctx, row)]
    view = {"id": row.id, "when": _local(row.starts_at), "department": _department(t, row.department_code),
            "doctor": row.doctor, "fee": f"{row.fee_fen / 100:.2f}", "open": row.status == "open",
            "category": CATEGORY_LABELS[row.category][1 if t.lang == "zh" else 0]}
    return resident_page(request, ctx, "me_appointments_session.html", status_code, nav="appointments",
                         session=view, periods=periods, members=_members(ctx, t), state=state or FormState())


@router.get("/me/appointments/session/{session_id}", response_class=HTMLResponse)
def session_page(request: Request, ctx: ResidentPage, session_id: str) -> HTMLResponse:
    return _session_page(request, ctx, session_id)


@router.post("/me/appointments/book", response_class=HTMLResponse)
def book(request: Request, ctx: ResidentPage, period_id: Annotated[int, Form(ge=1, le=2**62)],
         session_id: Annotated[str, Form(max_length=24)] = "", member: Annotated[str, Form(max_length=64)] = "",
         waitlist: Annotated[str, Form(max_length=1)] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    try:
        patient = appointments.patient_for_resident(ctx, member or None)
        if waitlist:
            appointments.join_waitlist(ctx, period_id, patient)
            return see_other(request, "/me/appointments", "waitlist_joined")
        booking = appointments.book(ctx, period_id, patient)
    except Problem as problem:
        return _session_page(request, ctx, session_id, _problem(ctx, request, problem), problem.status)
    return see_other(request, f"/me/appointments/{booking.reference}", "booking_held", booking.reference)


def _booking_page(request: Request, ctx: Ctx, reference: str, state: FormState | None = None,
                  status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    booking = appointments.my_booking(ctx, reference)
    seen = appointments.view(ctx, [booking])[0]
    alternatives = [{"id": p.id, "when": in_china(p.starts_at).strftime("%H:%M")}
                    for p, free in appointments.periods(ctx, seen.session) if free > 0 and p.id != booking.period_id]
    history = [{"when": _local(e.at), "action": t(f"appointments.action.{e.action}")
                if t.has(f"appointments.action.{e.action}") else e.action, "reason": e.reason or ""}
               for e in appointments.history(ctx, booking)]
    return resident_page(request, ctx, "me_appointment.html", status_code, nav="appointments",
                         booking=_booking_row(t, seen), history=history, alternatives=alternatives,
                         hold_until=_local(booking.hold_expires_at) if booking.hold_expires_at else "",
                         state=state or FormState())


@router.get("/me/appointments/{reference}", response_class=HTMLResponse)
def booking_page(request: Request, ctx: ResidentPage, reference: str) -> HTMLResponse:
    return _booking_page(request, ctx, reference)


@router.post("/me/appointments/{reference}/{action}", response_class=HTMLResponse)
def change(request: Request, ctx: ResidentPage, reference: str, action: str,
           period_id: Annotated[int | None, Form(ge=1, le=2**62)] = None,
           csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    booking = appointments.my_booking(ctx, reference)
    try:
        if action == "confirm":
            appointments.confirm(ctx, booking)
        elif action == "cancel":
            appointments.cancel(ctx, booking, "cancelled by the resident online")
        elif action == "move" and period_id is not None:
            appointments.move(ctx, booking, period_id)
        else:
            return see_other(request, f"/me/appointments/{booking.reference}")
    except Problem as problem:
        return _booking_page(request, ctx, reference, _problem(ctx, request, problem), problem.status)
    return see_other(request, f"/me/appointments/{booking.reference}", _DONE[action], booking.reference)


_DONE = {"confirm": "booking_confirmed", "cancel": "booking_cancelled", "move": "booking_moved"}
