"""Appointment pages for staff: the desk (today's list for a department, check-in by scan or by
typing the code, which hardware scanners do as keyboards; same-day registration at the counter) and
the scheduler (the week's sessions, templates, one-off sessions, suspension with its effects shown
before it is applied). Each page applies the rule of its API (``appointments.auth``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...appointments import service as appointments
from ...appointments.auth import BookingDesk, CheckInDesk, DayListReader, Scheduler
from ...institutions.service import DEPARTMENTS
from ...kit.clock import china_today, in_china
from ...kit.errors import Invalid, Problem
from .. import forms, i18n
from ..core import PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import Staff, staff_page, page_under

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DeskPage, SchedulerPage, BookerPage, CheckInPage = (page_under(a) for a in (DayListReader, Scheduler, BookingDesk,
                                                                            CheckInDesk))


def _local(moment) -> str:  # noqa: ANN001
    return in_china(moment).strftime("%Y-%m-%d %H:%M")


def _department(t: i18n.Translator, code: str) -> str:
    labels = DEPARTMENTS.get(code)
    return f"{code} {labels[1 if t.lang == 'zh' else 0]}" if labels else code


def _failed(staff: Staff, request: Request, problem: Problem, form: str) -> FormState:
    staff.ctx.session.rollback()
    t = i18n.for_request(request)
    state = FormState(form=form)
    state.add("", forms.message(t, problem.code, forms.problem_params(problem), problem.detail))
    return state


# -- the desk -------------------------------------------------------------------------------------

def _desk_page(request: Request, staff: Staff, department_code: str = "", state: FormState | None = None,
               status_code: int = 200, checked: dict | None = None) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    today = china_today()
    rows = [{"reference": v.booking.reference, "when": in_china(v.period.starts_at).strftime("%H:%M"),
             "department": _department(t, v.session.department_code), "doctor": v.session.doctor,
             "status": v.booking.status, "status_label": t(f"appointments.status.{v.booking.status}"),
             "referral": v.booking.referral_id is not None, "referral_reason": v.booking.referral_reason}
            for v in appointments.view(ctx, appointments.todays_list(ctx, department_code or None))]
    found = appointments.search(ctx, first=today, last=today, institution_id=ctx.actor.institution_id,
                                department_code=department_code or None)
    sessions = [{"id": s.id, "when": _local(s.starts_at), "department": _department(t, s.department_code),
                 "doctor": s.doctor, "periods": [{"id": p.id, "when": in_china(p.starts_at).strftime("%H:%M"),
                                                  "free": free} for p, free in appointments.periods(ctx, s)]}
                for s in (v.session for v in found)]
    return staff_page(request, staff, "staff_appointments_desk.html", status_code, nav="staff_appointments",
                      rows=rows, sessions=sessions, department_code=department_code, state=state or FormState(),
                      checked=checked, today=today.isoformat())


@router.get("/staff/appointments", response_class=HTMLResponse)
def desk(request: Request, staff: DeskPage,
         department_code: Annotated[str, Query(max_length=4)] = "") -> HTMLResponse:
    return _desk_page(request, staff, department_code)


@router.post("/staff/appointments/check-in", response_class=HTMLResponse)
def check_in(request: Request, staff: CheckInPage, code: Annotated[str, Form(max_length=2000)] = "",
             department_code: Annotated[str, Form(max_length=4)] = "",
             csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    try:
        done = appointments.check_in(staff.ctx, code)
    except Problem as problem:
        return _desk_page(request, staff, department_code, _failed(staff, request, problem, "check-in"),
                          problem.status)
    return see_other(request, f"/staff/appointments?department_code={department_code}", "checked_in",
                     f"{done.booking.reference} ({done.scene})")


@router.post("/staff/appointments/book", response_class=HTMLResponse)
def book(request: Request, staff: BookerPage, period_id: Annotated[int, Form(ge=1, le=2**62)],
         ehc_id: Annotated[str, Form(max_length=100)] = "", department_code: Annotated[str, Form(max_length=4)] = "",
         csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    try:
        patient = appointments.patient_for_staff(staff.ctx, "".join(ehc_id.split()))
        booking = appointments.book(staff.ctx, period_id, patient, confirm=True)
    except Problem as problem:
        return _desk_page(request, staff, department_code, _failed(staff, request, problem, "book"), problem.status)
    return see_other(request, f"/staff/appointments?department_code={department_code}", "desk_booked",
                     booking.reference)


# -- the scheduler --------------------------------------------------------------------------------

def _schedule_page(request: Request, staff: Staff, first: date, state: FormState | None = None,
                   status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    sessions = [{"id": s.id, "when": _local(s.starts_at), "end": in_china(s.ends_at).strftime("%H:%M"),
                 "department": _department(t, s.department_code), "doctor": s.doctor, "status": s.status,
                 "status_label": t(f"appointments.session_status.{s.status}"), "fee": f"{s.fee_fen / 100:.2f}",
                 "category": t(f"appointments.category_label.{s.category}")}
                for s in appointments.week(ctx, first)]
    templates = [{"weekday": t(f"appointments.weekday.{tp.weekday}"), "hours": f"{tp.start}-{tp.end}",
                  "department": _department(t, tp.department_code), "doctor": tp.doctor,
                  "quotas": f"{tp.quota_window}/{tp.quota_kiosk}/{tp.quota_online}/{tp.quota_referral}"}
                 for tp in appointments.list_templates(ctx)]
    departments = [(code, _department(t, code)) for code in DEPARTMENTS]
    return staff_page(request, staff, "staff_appointments_schedule.html", status_code, nav="staff_schedule",
                      sessions=sessions, templates=templates, departments=departments, first=first.isoformat(),
                      next_week=(first + timedelta(days=7)).isoformat(), state=state or FormState(),
                      weekdays=[(str(n), t(f"appointments.weekday.{n}")) for n in range(7)],
                      categories=[(c, t(f"appointments.category_label.{c}")) for c in appointments.CATEGORIES])


def _first(raw: str) -> date:
    try:
        return date.fromisoformat(raw) if raw else china_today()
    except ValueError:
        return china_today()


@router.get("/staff/appointments/schedule", response_class=HTMLResponse)
def schedule(request: Request, staff: SchedulerPage, first: Annotated[str, Query(max_length=10)] = "") -> HTMLResponse:
    return _schedule_page(request, staff, _first(first))


def _shape(values: dict[str, Any]) -> appointments.Shape:
    return appointments.Shape(start=values["start"], end=values["end"], period_minutes=int(values["period_minutes"]),
                              category=values["category"], fee_fen=round(float(values["fee_yuan"] or 0) * 100),
                              quota_window=int(values["quota_window"]), quota_kiosk=int(values["quota_kiosk"]),
                              quota_online=int(values["quota_online"]), quota_referral=int(values["quota_referral"]),
                              referral_release_hours=int(values["referral_release_hours"]))


_SHAPE_FIELDS = ("start", "end", "period_minutes", "category", "fee_yuan", "quota_window", "quota_kiosk",
                 "quota_online", "quota_referral", "referral_release_hours")


@router.post("/staff/appointments/schedule", response_class=HTMLResponse)
async def add_to_schedule(request: Request, staff: SchedulerPage) -> Response:
    """One form, three acts (``act``): a one-off session, a weekly template, publishing from templates."""
    data = await request.form()
    require_csrf(request, staff.ctx, str(data.get("csrf_token", "")))
    values = {k: str(v)[:64] for k, v in data.items() if k != "csrf_token"}
    act = values.get("act", "")
    try:
        if act == "publish":
            made = appointments.publish(staff.ctx, _first(values.get("first", "")), _first(values.get("last", "")))
            return see_other(request, "/staff/appointments/schedule", "sessions_published", str(len(made)))
        try:
            shape = _shape({k: values.get(k, "0") for k in _SHAPE_FIELDS})
        except ValueError:
            raise Invalid("Hours, minutes, fees and quotas are numbers.", code="invalid") from None
        if act == "template":
            appointments.add_template(staff.ctx, department_code=values.get("department_code", ""),
                                      weekday=int(values.get("weekday", "0") or 0), shape=shape,
                                      doctor=values.get("doctor", ""))
            return see_other(request, "/staff/appointments/schedule", "template_added")
        made = appointments.create_session(staff.ctx, department_code=values.get("department_code", ""),
                                           day=_first(values.get("day", "")), shape=shape,
                                           doctor=values.get("doctor", ""))
        return see_other(request, "/staff/appointments/schedule", "session_published", _local(made.starts_at))
    except Problem as problem:
        return _schedule_page(request, staff, china_today(), _failed(staff, request, problem, act), problem.status)


def _suspend_page(request: Request, staff: Staff, session_id: str, state: FormState | None = None,
                  status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    row = appointments.get_session(staff.ctx, session_id)
    effects = [{"reference": e.booking.reference, "when": _local(appointments.period_of(staff.ctx, e.booking).starts_at),
                "offers": ", ".join(_local(o.starts_at) for o in e.offers)}
               for e in appointments.suspension_effects(staff.ctx, session_id)]
    view = {"id": row.id, "when": _local(row.starts_at), "department": _department(t, row.department_code),
            "doctor": row.doctor, "open": row.status == "open"}
    return staff_page(request, staff, "staff_appointments_suspend.html", status_code, nav="staff_schedule",
                      session=view, effects=effects, state=state or FormState())


@router.get("/staff/appointments/schedule/{session_id}/suspend", response_class=HTMLResponse)
def suspend_preview(request: Request, staff: SchedulerPage, session_id: str) -> HTMLResponse:
    return _suspend_page(request, staff, session_id)


@router.post("/staff/appointments/schedule/{session_id}/suspend", response_class=HTMLResponse)
def suspend(request: Request, staff: SchedulerPage, session_id: str,
            reason: Annotated[str, Form(max_length=200)] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    try:
        effects = appointments.suspend(staff.ctx, session_id, reason)
    except Problem as problem:
        return _suspend_page(request, staff, session_id, _failed(staff, request, problem, "suspend"), problem.status)
    return see_other(request, "/staff/appointments/schedule", "session_suspended", str(len(effects)))
