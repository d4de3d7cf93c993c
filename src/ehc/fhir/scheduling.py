"""Appointments on the FHIR door (issue 14): Schedule, Slot and Appointment read and search, and the IHE
ITI Scheduling operations ``Appointment/$find``, ``$hold`` and ``$book``.

Thin, as the records routes: parse, authorise (appointments/auth.py: the timetable is public, the desk
books and reads its institution's bookings), call ``appointments.service``, answer FHIR JSON; errors are
OperationOutcomes (the router's ``FhirRoute``). The mapping (docs/appointments.md): a Schedule is a
session (one department's or doctor's sitting on one day), a Slot one of its periods (``free`` when the
caller's quota has a place), an Appointment a booking, its id the booking's reference.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from fhir.resources.R4B import get_fhir_model_class

from ..appointments import service as appointments
from ..appointments.auth import BookingDesk, DayListReader, ScheduleReader
from ..kit import idempotency
from ..kit.auth import RawBody
from ..kit.clock import china_today, in_china
from ..kit.context import Ctx
from ..kit.errors import Invalid, NotFound, field_error
from .patient import SID
from .records import answer, base, parsed

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
DEPARTMENT = f"{SID}/department"  # value: <institution id>/<department code>
REFERENCE = f"{SID}/appointment-reference"
STATUS = {"held": "pending", "booked": "booked", "arrived": "arrived", "cancelled": "cancelled",
          "expired": "cancelled", "no_show": "noshow"}
CATEGORY = {"general": "普通 general", "expert": "专家 expert", "special": "特需 special"}


def _checked(body: dict) -> dict:
    """A resource validated against the R4B model before it leaves."""
    return get_fhir_model_class(body["resourceType"]).model_validate(body).model_dump(mode="json", exclude_none=True)


def _bundle(request: Request, resources: list[dict]) -> dict:
    entries = [{**({"fullUrl": f"{base(request)}/{r['resourceType']}/{r['id']}"} if "id" in r else {}),
                "resource": r, "search": {"mode": "match"}} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def _instant(moment: datetime) -> str:
    return moment.isoformat()


def _department(row) -> dict:  # noqa: ANN001
    return {"coding": [{"system": DEPARTMENT, "code": f"{row.institution_id}/{row.department_code}"}],
            "text": row.department_code}


def _actors(row) -> list[dict]:  # noqa: ANN001
    actors = [{"type": "HealthcareService", "identifier": {"system": DEPARTMENT,
                                                           "value": f"{row.institution_id}/{row.department_code}"},
               "display": row.department_code}]
    if row.doctor:
        actors.append({"type": "Practitioner", "display": row.doctor})
    return actors


def schedule_json(row) -> dict:  # noqa: ANN001
    return _checked({
        "resourceType": "Schedule", "id": row.id, "active": row.status == "open",
        "serviceType": [{"text": CATEGORY.get(row.category, row.category)}], "specialty": [_department(row)],
        "actor": _actors(row), "planningHorizon": {"start": _instant(row.starts_at), "end": _instant(row.ends_at)},
        "comment": f"{row.category}, fee {row.fee_fen} fen, {row.period_minutes}-minute periods"
                   + (f"; suspended: {row.suspended_reason}" if row.status != "open" else ""),
    })


def slot_json(period, row, free: int) -> dict:  # noqa: ANN001
    return _checked({
        "resourceType": "Slot", "id": str(period.id), "schedule": {"reference": f"Schedule/{row.id}"},
        "status": "free" if free > 0 else "busy", "start": _instant(period.starts_at), "end": _instant(period.ends_at),
        "serviceType": [{"text": CATEGORY.get(row.category, row.category)}], "specialty": [_department(row)],
        "comment": f"{free} place(s) for your channel",
    })


def _appointment(period, row, *, status: str, ehc_id: str | None, ref: str | None = None,  # noqa: ANN001
                 created: datetime | None = None) -> dict:
    participants = [{"actor": {"reference": f"Patient/{ehc_id}"},
                     "status": "needs-action" if status == "proposed" else "accepted"}] if ehc_id else []
    participants += [{"actor": actor, "status": "accepted"} for actor in _actors(row)]
    body: dict[str, Any] = {
        "resourceType": "Appointment", "status": status, "start": _instant(period.starts_at),
        "end": _instant(period.ends_at), "slot": [{"reference": f"Slot/{period.id}"}],
        "serviceType": [{"text": CATEGORY.get(row.category, row.category)}], "specialty": [_department(row)],
        "participant": participants,
    }
    if ref:
        body.update(id=ref, identifier=[{"system": REFERENCE, "value": ref}])
    if created:
        body["created"] = _instant(created)
    return _checked(body)


def appointment_json(ctx: Ctx, booking) -> dict:  # noqa: ANN001
    seen = appointments.view(ctx, [booking])[0]
    return _appointment(seen.period, seen.session, status=STATUS.get(booking.status, "proposed"),
                        ehc_id=booking.ehc_id, ref=booking.reference, created=booking.created_at)


# -- parameters -----------------------------------------------------------------------------------

def _day(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise Invalid(f"{name} is a date, YYYY-MM-DD.", code="fhir_date_invalid",
                      errors=[field_error(name, "fhir_date_invalid", "a date YYYY-MM-DD")]) from None


def _range(values: list[str], name: str) -> tuple[date | None, date | None]:
    """FHIR date prefixes (ge, gt, le, lt, eq or none) on days, as (first, last)."""
    first = last = None
    for raw in values:
        prefix, value = (raw[:2], raw[2:]) if raw[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", raw)
        day = _day(name, value)
        if prefix in ("ge", "eq"):
            first = day
        if prefix == "gt":
            first = day + timedelta(days=1)
        if prefix in ("le", "eq"):
            last = day
        if prefix == "lt":
            last = day - timedelta(days=1)
    return first, last


def _sessions(ctx: Ctx, params: dict[str, list[str]], first: date | None, last: date | None) -> list:
    first = first or china_today()
    found = appointments.search(ctx, first=first, last=last or first + timedelta(days=13),
                                institution_id=_one(params, "institution", "location") or None,
                                department_code=_one(params, "department", "specialty") or None,
                                doctor=_one(params, "practitioner") or None, limit=100)
    return [v.session for v in found]


def _one(params: dict[str, list[str]], *names: str) -> str:
    for name in names:
        if params.get(name):
            return params[name][0].split("|")[-1].strip()
    return ""


def _query(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        out.setdefault(name, []).append(value)
    return out


def _reference_id(value: str, kind: str) -> str:
    return value.strip().removeprefix(f"{kind}/").rsplit("/", 1)[-1]


# -- Schedule and Slot (public, as the timetable) ----------------------------------------------------

def schedule_search(request: Request, ctx: ScheduleReader) -> JSONResponse:
    params = _query(request)
    first, last = _range(params.get("date", []), "date")
    return answer(_bundle(request, [schedule_json(r) for r in _sessions(ctx, params, first, last)]))


def schedule_read(schedule_id: str, ctx: ScheduleReader) -> JSONResponse:
    return answer(schedule_json(appointments.get_session(ctx, schedule_id)))


def _period_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise NotFound("No such period.", code="period_not_found")
    return int(value)


def slot_search(request: Request, ctx: ScheduleReader) -> JSONResponse:
    params = _query(request)
    first, last = _range(params.get("start", []), "start")
    status = _one(params, "status")
    if status and status not in ("free", "busy"):
        raise Invalid("status is free or busy.", code="slot_status_invalid",
                      errors=[field_error("status", "slot_status_invalid", "free | busy")])
    schedule = _one(params, "schedule")
    rows = [appointments.get_session(ctx, _reference_id(schedule, "Schedule"))] if schedule else \
        _sessions(ctx, params, first, last)
    slots = []
    for row in rows:
        for period, free in appointments.periods(ctx, row):
            day = in_china(period.starts_at).date()
            if (first and day < first) or (last and day > last):
                continue
            resource = slot_json(period, row, free)
            if not status or resource["status"] == status:
                slots.append(resource)
    return answer(_bundle(request, slots))


def slot_read(slot_id: str, ctx: ScheduleReader) -> JSONResponse:
    return answer(slot_json(*appointments.get_period(ctx, _period_id(slot_id))))


# -- Appointment: the desk reads its institution's bookings ------------------------------------------

def appointment_search(request: Request, ctx: DayListReader) -> JSONResponse:
    patient = _reference_id(_one(_query(request), "patient", "actor"), "Patient")
    if not patient:
        raise Invalid("Search by patient=<EHC ID>.", code="appointment_search_needs_patient",
                      errors=[field_error("patient", "appointment_search_needs_patient", "required")])
    found = appointments.staff_bookings_of_card(ctx, patient)
    return answer(_bundle(request, [appointment_json(ctx, b) for b in found]))


def appointment_read(appointment_id: str, ctx: DayListReader) -> JSONResponse:
    return answer(appointment_json(ctx, appointments.staff_booking(ctx, appointment_id)))


# -- IHE ITI Scheduling: $find (public), $hold and $book (the desk) -----------------------------------

def _parameters(body: object) -> dict[str, list[Any]]:
    """A Parameters resource as name -> values (value[x] or resource)."""
    if body is None:
        return {}
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise Invalid("The body is a FHIR Parameters resource.", code="fhir_resource_invalid")
    out: dict[str, list[Any]] = {}
    for p in body.get("parameter") or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise Invalid("Each parameter has a name.", code="fhir_resource_invalid")
        value = p.get("resource", next((v for k, v in p.items() if k.startswith("value")), None))
        out.setdefault(p["name"], []).append(value)
    return out


def find(request: Request, ctx: ScheduleReader, body: RawBody) -> JSONResponse:
    params = _query(request)
    if request.method == "POST":
        for name, values in _parameters(parsed(body)).items():
            params.setdefault(name, []).extend(str(v) for v in values if isinstance(v, (str, int)))
    first = _day("start", params["start"][0]) if params.get("start") else None
    last = _day("end", params["end"][0]) if params.get("end") else None
    patient = _reference_id(_one(params, "patient"), "Patient") or None
    count = _one(params, "_count", "count")
    if count and (not count.isdigit() or not 1 <= int(count) <= 500):
        raise Invalid("_count is a number from 1 to 500.", code="fhir_count_invalid",
                      errors=[field_error("_count", "fhir_count_invalid", "1..500")])
    proposed = []
    for row in _sessions(ctx, params, first, last):
        proposed += [_appointment(p, row, status="proposed", ehc_id=patient)
                     for p, free in appointments.periods(ctx, row) if free > 0]
    return answer(_bundle(request, proposed[:int(count or 100)]))


def _requested(body: bytes) -> dict:
    """The Appointment of an $hold or $book: ``appointment`` in a Parameters, or the Appointment itself."""
    given = parsed(body)
    if isinstance(given, dict) and given.get("resourceType") == "Parameters":
        given = next(iter(_parameters(given).get("appointment") or []), None)
    if not isinstance(given, dict) or given.get("resourceType") != "Appointment":
        raise Invalid("Send the Appointment (a Parameters with an 'appointment', or the Appointment itself).",
                      code="appointment_missing", errors=[field_error("appointment", "appointment_missing", "required")])
    return given


def _slot_and_patient(given: dict) -> tuple[int, str]:
    slots = [s.get("reference", "") for s in given.get("slot") or [] if isinstance(s, dict)]
    patients = [p["actor"]["reference"] for p in given.get("participant") or []
                if isinstance(p, dict) and isinstance(p.get("actor"), dict)
                and str(p["actor"].get("reference", "")).startswith("Patient/")]
    if len(slots) != 1 or not isinstance(slots[0], str) or not slots[0].startswith("Slot/"):
        raise Invalid("Name exactly one slot (Slot/<id>).", code="appointment_slot_missing",
                      errors=[field_error("slot", "appointment_slot_missing", "one Slot reference")])
    if len(patients) != 1:
        raise Invalid("Name exactly one patient participant (Patient/<EHC ID>).", code="appointment_patient_missing",
                      errors=[field_error("participant", "appointment_patient_missing", "one Patient reference")])
    return _period_id(_reference_id(slots[0], "Slot")), _reference_id(patients[0], "Patient")


def _once(request: Request, ctx: Ctx, key: str | None, route: str, given: dict, response: Response, do) -> JSONResponse:  # noqa: ANN001
    booking, _ = idempotency.run_once(ctx, key, route, given, response, lambda: (do(), True),
                                      ref=lambda b: b.id, load=lambda ref: appointments.booking_by_id(ctx, ref))
    headers = {k: v for k, v in response.headers.items() if k.lower() == "idempotent-replayed"}
    return answer(_bundle(request, [appointment_json(ctx, booking)]), response.status_code or 201, headers)


def hold(request: Request, ctx: BookingDesk, body: RawBody, response: Response,
         idempotency_key: IdempotencyKey = None) -> JSONResponse:
    given = _requested(body)
    period_id, ehc_id = _slot_and_patient(given)
    return _once(request, ctx, idempotency_key, "fhir.appointment.hold", given, response,
                 lambda: appointments.book(ctx, period_id, appointments.patient_for_staff(ctx, ehc_id)))


def book(request: Request, ctx: BookingDesk, body: RawBody, response: Response,
         idempotency_key: IdempotencyKey = None) -> JSONResponse:
    given = _requested(body)
    if isinstance(given.get("id"), str) and given["id"]:  # a held appointment: confirm it (a retry finds it booked)
        booking = appointments.staff_booking(ctx, given["id"])
        if booking.status != "booked":
            appointments.confirm(ctx, booking)
        return answer(_bundle(request, [appointment_json(ctx, booking)]))
    period_id, ehc_id = _slot_and_patient(given)
    return _once(request, ctx, idempotency_key, "fhir.appointment.book", given, response,
                 lambda: appointments.book(ctx, period_id, appointments.patient_for_staff(ctx, ehc_id), confirm=True))


def build_router(route_class: type) -> APIRouter:
    """The scheduling routes; included before the records' ``/{resource_type}`` patterns."""
    router = APIRouter(route_class=route_class)
    router.add_api_route("/Schedule", schedule_search, methods=["GET"], summary="Search schedules (sessions): date, institution, department, practitioner")
    router.add_api_route("/Schedule/{schedule_id}", schedule_read, methods=["GET"], summary="Read a Schedule (a session)")
    router.add_api_route("/Slot", slot_search, methods=["GET"], summary="Search slots (periods): schedule, start, status")
    router.add_api_route("/Slot/{slot_id}", slot_read, methods=["GET"], summary="Read a Slot (a period)")
    router.add_api_route("/Appointment/$find", find, methods=["GET", "POST"], summary="IHE ITI Scheduling $find: proposed appointments in free slots")
    router.add_api_route("/Appointment/$hold", hold, methods=["POST"], summary="IHE ITI Scheduling $hold: hold a slot for a patient")
    router.add_api_route("/Appointment/$book", book, methods=["POST"], summary="IHE ITI Scheduling $book: confirm a hold, or book directly")
    router.add_api_route("/Appointment", appointment_search, methods=["GET"], summary="Search a patient's appointments at your institution")
    router.add_api_route("/Appointment/{appointment_id}", appointment_read, methods=["GET"], summary="Read an appointment (id: the booking reference)")
    return router
