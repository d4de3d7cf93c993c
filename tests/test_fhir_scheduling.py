"""Appointments on the FHIR door (issue 14): Schedule, Slot, Appointment and the IHE ITI Scheduling
operations $find, $hold and $book; driven with ``fhirclient`` against a live server as a signed hospital
system, and through the test client for the rules and the errors (OperationOutcomes, never a 500)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from appointments_world import desk, publish, resident
from argon2 import PasswordHasher
from fhir.resources.R4B import get_fhir_model_class
from fhirclient.models.appointment import Appointment as R4Appointment
from fhirclient.models.bundle import Bundle as R4Bundle
from fhirclient.models.schedule import Schedule as R4Schedule
from fhirclient.models.slot import Slot as R4Slot
from test_fhir import SignedRequests, fhirclient_for

from ehc.accounts import service as accounts
from ehc.kit.clock import china_today

FHIR_JSON = "application/fhir+json"
TOMORROW = lambda: china_today() + timedelta(days=1)  # noqa: E731


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def world(platform, client, institution):  # noqa: ANN001, ANN201
    staff = desk(platform, client, institution)
    session = publish(client, staff["institution_admin"])
    ehc_id, _ = resident(client, platform, 7)
    return {"staff": staff, "session": session, "ehc_id": ehc_id, "institution": institution}


def fhir(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    body = answer.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def code_of(answer) -> str:  # noqa: ANN001
    assert answer.status_code < 500, answer.text
    body = fhir(answer, answer.status_code)
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]["details"]["coding"][0]["code"]


def appointment(slot: int | str, ehc_id: str, **extra) -> dict:
    return {"resourceType": "Parameters", "parameter": [{"name": "appointment", "resource": {
        "resourceType": "Appointment", "status": "proposed", "slot": [{"reference": f"Slot/{slot}"}],
        "participant": [{"actor": {"reference": f"Patient/{ehc_id}"}, "status": "needs-action"}], **extra}}]}


def test_fhirclient_finds_holds_and_books_as_a_signed_hospital_system(live_url, world, his) -> None:
    server = fhirclient_for(live_url, auth=SignedRequests(his.app_id, his.key_id, his.private_key)).server
    session, ehc_id = world["session"], world["ehc_id"]
    served = {r.type: r for r in server.capabilityStatement.rest[0].resource}
    assert {"Schedule", "Slot"} <= set(served) and {o.name for o in served["Appointment"].operation} == {"find", "hold", "book"}
    schedules = R4Schedule.where(struct={"date": f"ge{TOMORROW()}", "department": "0300"}).perform_resources(server)
    assert [s.id for s in schedules] == [session["id"]] and schedules[0].active
    assert R4Schedule.read(session["id"], server).planningHorizon.start.isostring
    slots = R4Slot.where(struct={"schedule": f"Schedule/{session['id']}", "status": "free"}).perform_resources(server)
    assert [int(s.id) for s in slots] == [p["id"] for p in session["periods"]]  # the window's place in each
    assert R4Slot.read(slots[0].id, server).status == "free"
    # $find: proposed appointments in free slots, one per slot.
    found = R4Bundle(server.request_json(f"Appointment/$find?start={TOMORROW()}&end={TOMORROW()}"
                                         f"&department=0300&patient=Patient/{ehc_id}"))
    proposed = [e.resource for e in found.entry]
    assert len(proposed) == 4 and {a.status for a in proposed} == {"proposed"}
    assert proposed[0].slot[0].reference == f"Slot/{slots[0].id}"
    # $hold, then $book the held appointment.
    held = R4Bundle(server.post_json("Appointment/$hold", appointment(slots[0].id, ehc_id)).json()).entry[0].resource
    assert held.status == "pending" and held.id.startswith("A")
    booked = server.post_json("Appointment/$book", {"resourceType": "Parameters", "parameter": [
        {"name": "appointment", "resource": {**held.as_json(), "status": "booked"}}]}).json()
    assert R4Bundle(booked).entry[0].resource.status == "booked"
    # The slot is busy now for the window (its one place taken), and the appointment reads and searches.
    assert R4Slot.read(slots[0].id, server).status == "busy"
    assert R4Appointment.read(held.id, server).participant[0].actor.reference == f"Patient/{ehc_id}"
    mine = R4Appointment.where(struct={"patient": ehc_id}).perform_resources(server)
    assert [a.id for a in mine] == [held.id]


def test_hold_is_idempotent_book_confirms_or_books_directly(client, world, his) -> None:
    periods, ehc_id = world["session"]["periods"], world["ehc_id"]
    key = {"Idempotency-Key": "fhir-hold-0001"}
    first = fhir(client.post("/fhir/Appointment/$hold", json=appointment(periods[0]["id"], ehc_id), auth=his,
                             headers=key), 201)
    again = client.post("/fhir/Appointment/$hold", json=appointment(periods[0]["id"], ehc_id), auth=his, headers=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    ref = first["entry"][0]["resource"]["id"]
    assert fhir(again, 201)["entry"][0]["resource"]["id"] == ref
    confirm = {"resourceType": "Appointment", "id": ref, "status": "booked"}
    assert fhir(client.post("/fhir/Appointment/$book", json=confirm, auth=his))["entry"][0]["resource"]["status"] == "booked"
    assert fhir(client.post("/fhir/Appointment/$book", json=confirm, auth=his))["entry"][0]["resource"]["status"] == "booked"
    clerk = world["staff"]["window_clerk"]
    staff_read = fhir(client.get(f"/fhir/Appointment/{ref}", headers=clerk))
    assert staff_read["status"] == "booked" and staff_read["slot"][0]["reference"] == f"Slot/{periods[0]['id']}"
    # The patient's booking in this session already: a second one is refused.
    assert code_of(client.post("/fhir/Appointment/$book", json=appointment(periods[1]["id"], ehc_id),
                               headers=clerk)) == "already_booked"
    found = fhir(client.get(f"/fhir/Appointment?patient=Patient/{ehc_id}", headers=clerk))
    assert [e["resource"]["id"] for e in found["entry"]] == [ref]


def test_direct_book_takes_the_place_and_a_full_slot_is_a_conflict(client, platform, world, his) -> None:
    periods = world["session"]["periods"]
    other, _ = resident(client, platform, 9)
    made = fhir(client.post("/fhir/Appointment/$book", json=appointment(periods[2]["id"], world["ehc_id"]),
                            auth=his), 201)
    assert made["entry"][0]["resource"]["status"] == "booked"
    full = client.post("/fhir/Appointment/$book", json=appointment(periods[2]["id"], other), auth=his)
    assert full.status_code == 409 and code_of(full) == "period_full"
    # The public timetable: anonymous callers search schedules and slots, and $find.
    slots = fhir(client.get(f"/fhir/Slot?schedule={world['session']['id']}&start=ge{TOMORROW()}"))
    assert len(slots["entry"]) == 4
    assert fhir(client.post("/fhir/Appointment/$find", json={"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDate": str(TOMORROW())}, {"name": "department", "valueString": "0300"}]}))["total"] == 4


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), [
    ("POST", "/fhir/Appointment/$hold", None, 422, "appointment_missing"),
    ("POST", "/fhir/Appointment/$hold", b"{not json", 400, "fhir_body_invalid"),
    ("POST", "/fhir/Appointment/$hold", {"resourceType": "Parameters", "parameter": [{"name": "x"}]}, 422,
     "appointment_missing"),
    ("POST", "/fhir/Appointment/$hold", {"resourceType": "Parameters", "parameter": "nope"}, 422, "fhir_resource_invalid"),
    ("POST", "/fhir/Appointment/$hold", {"resourceType": "Appointment", "slot": [{"reference": "Slot/1"}]}, 422,
     "appointment_patient_missing"),
    ("POST", "/fhir/Appointment/$hold", {"resourceType": "Appointment", "participant": "x"}, 422,
     "appointment_slot_missing"),
    ("POST", "/fhir/Appointment/$hold", "SLOT:abc", 404, "period_not_found"),
    ("POST", "/fhir/Appointment/$hold", "SLOT:999999999", 404, "period_not_found"),
    ("POST", "/fhir/Appointment/$book", "PATIENT:FFFF", 404, "card_not_found"),
    ("POST", "/fhir/Appointment/$book", {"resourceType": "Appointment", "id": "ANOSUCH00"}, 404, "booking_not_found"),
    ("GET", "/fhir/Appointment/$find?start=tomorrow", None, 422, "fhir_date_invalid"),
    ("GET", "/fhir/Appointment/$find?_count=0", None, 422, "fhir_count_invalid"),
    ("GET", "/fhir/Schedule?date=ge2026-13-40", None, 422, "fhir_date_invalid"),
    ("GET", "/fhir/Slot?status=maybe", None, 422, "slot_status_invalid"),
    ("GET", "/fhir/Slot/abc", None, 404, "period_not_found"),
    ("GET", "/fhir/Schedule/none", None, 404, "session_not_found"),
    ("GET", "/fhir/Appointment", None, 422, "appointment_search_needs_patient"),
    ("GET", "/fhir/Appointment?patient=FFFF", None, 404, "card_not_found"),
    ("GET", "/fhir/Appointment/ANOSUCH00", None, 404, "booking_not_found"),
])
def test_bad_input_is_an_operation_outcome(client, world, his, method, url, body, status, code) -> None:  # noqa: PLR0913
    period = world["session"]["periods"][0]["id"]
    if body == "SLOT:abc" or (isinstance(body, str) and body.startswith("SLOT:")):
        body = appointment(body.removeprefix("SLOT:"), world["ehc_id"])
    elif isinstance(body, str) and body.startswith("PATIENT:"):
        body = appointment(period, body.removeprefix("PATIENT:"))
    kwargs = {"content": body} if isinstance(body, bytes) else ({"json": body} if body is not None else {})
    answer = client.request(method, url, auth=his, **kwargs)
    assert answer.status_code == status, answer.text
    assert code_of(answer) == code
