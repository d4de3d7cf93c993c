"""Cross-references of the master index: hospital patient numbers (MRN), old hospital cards, social
security and insurance numbers, bound by a scanned code or a looked-up card, looked up within the
caller's authority; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from factories import card_holder, make_institution, make_staff
from hypothesis import given
from hypothesis import strategies as st
from residents import resident_id
from sqlalchemy import select, text

from ehc.audit.models import AuditEvent
from ehc.kit.context import Actor
from ehc.kit.errors import Invalid
from ehc.mpi import xref
from ehc.mpi.models import IdentifierUnbind
from ehc.qr.models import CardUse

PHONE = "13912345671"
PERSON = {"name": "王小明", "document": {"type": "01", "number": resident_id(born=date(1985, 6, 1), sequence=41)},
          "sex": "1", "birth_date": "1985-06-01", "phone": PHONE}
OTHER = {"name": "李四海", "document": {"type": "01", "number": resident_id(born=date(1979, 2, 3), sequence=42)},
         "sex": "1", "birth_date": "1979-02-03"}
URL = "/api/v1/mpi/identifiers"


def problem(answer, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code, answer.text
    return answer.json()


@pytest.fixture
def other_hospital(platform) -> str:
    return make_institution(platform, "inst-test-02", uscc="12440300MB7654321X", name="Shenzhen Clinic", kind="clinic",
                            region_code="440300")


@pytest.fixture
def card(client, clerk) -> str:
    made = client.post("/api/v1/cards", json=PERSON, headers=clerk)
    assert made.status_code == 201, made.text
    return made.json()["ehc_id"]


# -- systems and values (pure) -------------------------------------------------------------------------

def test_systems_and_values_are_normalised_and_checked() -> None:
    clerk = Actor(kind="staff", channel="0100", id="s1", institution_id="inst-a", roles=frozenset({"window_clerk"}))
    assert xref.parse("mrn", " ｍｒ-００１２ ", clerk) == xref.Identifier("mrn:inst-a", "MR-0012")
    assert xref.parse("oldcard:inst-b", "ab 12/34").value == "AB12/34"
    assert xref.parse("ssc", "a1234567-8").value == "A12345678"
    assert xref.parse("mi", "1234 5678 9012").value == "123456789012"
    assert xref.parse("doc:01", PERSON["document"]["number"].lower()).value == PERSON["document"]["number"]
    for system, value, code in (("ssc", "A123", "identifier_value_invalid"), ("mi", "12345", "identifier_value_invalid"),
                                ("mrn:inst-a", "-12", "identifier_value_invalid"), ("mrn", "12", "identifier_system_invalid"),
                                ("passport", "E1234", "identifier_system_invalid"), ("ssc", "  ", "identifier_value_invalid")):
        with pytest.raises(Invalid) as refused:
            xref.parse(system, value)  # no actor: a bare mrn has no institution
        assert refused.value.code == code, (system, value)


@given(st.text(alphabet="0123456789ABCDEFabcdef-./ ", min_size=1, max_size=30))
def test_normalising_a_local_number_twice_changes_nothing(raw: str) -> None:
    try:
        once = xref.parse("mrn:inst-a", raw)
    except Invalid:
        return
    assert xref.parse("mrn:inst-a", once.value) == once
    assert " " not in once.value and once.value == once.value.upper()


def test_masking_keeps_one_head_and_two_tail_characters() -> None:
    assert xref.mask_value(xref.Identifier("ssc", "A12345678")) == "A******78"
    assert xref.mask_value(xref.Identifier("doc:01", PERSON["document"]["number"])).startswith("510***")
    assert xref.mask_value(xref.Identifier("mi", "123")) == "***"


# -- binding by card, lookups, authority --------------------------------------------------------------

def test_a_hospital_binds_its_mrn_once_and_finds_the_person_by_it(client, platform, clerk, card, institution,
                                                                   other_hospital):
    first = client.post(URL, json={"system": "mrn", "value": "mr-0012", "ehc_id": card}, headers=clerk)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["ehc_id"] == card and body["system"] == f"mrn:{institution}" and body["created"] is True
    assert body["holder"]["name"] == "王*明" and body["holder"]["phone"] == "139****5671"
    again = client.post(URL, json={"system": f"mrn:{institution}", "value": "MR-0012", "ehc_id": card}, headers=clerk)
    assert again.status_code == 200 and again.json()["created"] is False
    assert {k: v for k, v in again.json().items() if k != "created"} == {k: v for k, v in body.items() if k != "created"}

    found = client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "MR 0012".replace(" ", "-")},
                       headers=clerk)
    assert found.status_code == 200 and found.json()["ehc_id"] == card
    problem(client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "MR-9999"}, headers=clerk),
            404, "person_not_found")

    # The same number cannot lead to a second person, and the answer does not say who holds it.
    someone = client.post("/api/v1/cards", json=OTHER, headers=clerk).json()["ehc_id"]
    taken = problem(client.post(URL, json={"system": "mrn", "value": "MR-0012", "ehc_id": someone}, headers=clerk),
                    409, "identifier_taken")
    assert card not in str(taken) and someone not in str(taken) and set(taken) <= {
        "type", "title", "status", "code", "detail", "instance", "request_id"}

    # Another hospital can neither bind nor look up by this hospital's numbers.
    stranger = make_staff(platform, client, "window_clerk", other_hospital)
    problem(client.post(URL, json={"system": f"mrn:{institution}", "value": "MR-7", "ehc_id": card}, headers=stranger),
            403, "identifier_system_not_allowed")
    problem(client.get("/api/v1/mpi/persons", params={"system": f"mrn:{institution}", "value": "MR-0012"},
                       headers=stranger), 403, "identifier_system_not_allowed")
    # ... but binds its own old card number to the same person.
    own = client.post(URL, json={"system": "oldcard", "value": "OC-77", "ehc_id": card}, headers=stranger)
    assert own.status_code == 201 and own.json()["system"] == f"oldcard:{other_hospital}"

    # Sealed at rest: the numbers appear nowhere in clear.
    with platform.db.engine.connect() as conn:
        dump = " ".join(str(row) for row in conn.execute(text("SELECT * FROM person_identifiers")))
    assert "MR-0012" not in dump and "OC-77" not in dump


def test_national_numbers_are_window_work(client, platform, clerk, card, institution):
    doctor = make_staff(platform, client, "doctor", institution)
    problem(client.post(URL, json={"system": "ssc", "value": "A12345678", "ehc_id": card}, headers=doctor),
            403, "identifier_system_not_allowed")
    problem(client.post(URL, json={"system": "doc:01", "value": OTHER["document"]["number"], "ehc_id": card},
                        headers=clerk), 403, "identifier_system_not_allowed")
    assert client.post(URL, json={"system": "ssc", "value": "A12345678", "ehc_id": card}, headers=clerk).status_code == 201
    assert client.post(URL, json={"system": "mi", "value": "5101000012345", "ehc_id": card},
                       headers=clerk).status_code == 201
    # The doctor looks the patient up by the national numbers, and by the document.
    for system, value in (("ssc", "a1234567-8"), ("mi", "5101000012345"), ("doc:01", PERSON["document"]["number"])):
        found = client.get("/api/v1/mpi/persons", params={"system": system, "value": value}, headers=doctor)
        assert found.status_code == 200 and found.json()["ehc_id"] == card, (system, found.text)
    problem(client.post(URL, json={"system": "mrn", "value": "X1", "ehc_id": card, "code": "EHC1:X"}, headers=clerk),
            422, "bind_target_required")
    problem(client.post(URL, json={"system": "ssc", "value": "A1", "ehc_id": card}, headers=clerk),
            422, "identifier_value_invalid")


def test_who_sees_which_cross_references(client, platform, clerk, card, institution, other_hospital):
    client.post(URL, json={"system": "mrn", "value": "MR-1", "ehc_id": card}, headers=clerk)
    client.post(URL, json={"system": "ssc", "value": "A12345678", "ehc_id": card}, headers=clerk)
    stranger = make_staff(platform, client, "window_clerk", other_hospital)
    client.post(URL, json={"system": "mrn", "value": "SZ-555", "ehc_id": card}, headers=stranger)

    def listed(headers: dict) -> dict[str, str]:
        answer = client.get(f"/api/v1/mpi/persons/{card}/identifiers", headers=headers)
        assert answer.status_code == 200, answer.text
        return {i["system"]: i["value"] for i in answer.json()}

    # A hospital: its own number in clear, national ones masked, the other hospital's not at all.
    assert listed(clerk) == {"doc:01": "510***********" + PERSON["document"]["number"][-4:],
                             f"mrn:{institution}": "MR-1", "ssc": "A******78"}
    assert listed(stranger)[f"mrn:{other_hospital}"] == "SZ-555" and f"mrn:{institution}" not in listed(stranger)
    # The commission's operator of the person's region sees every system, masked; of another region, no one.
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    seen = listed(operator)
    assert seen[f"mrn:{institution}"] == "M*-1" and seen["ssc"] == "A******78"
    assert seen[f"mrn:{other_hospital}"] == "S***55"
    elsewhere = make_staff(platform, client, "regional_operator", None, region="440300")
    problem(client.get(f"/api/v1/mpi/persons/{card}/identifiers", headers=elsewhere), 404, "person_not_found")
    problem(client.get("/api/v1/mpi/persons", params={"system": "ssc", "value": "A12345678"}, headers=elsewhere),
            404, "person_not_found")
    found = client.get("/api/v1/mpi/persons", params={"system": f"mrn:{other_hospital}", "value": "SZ-555"},
                       headers=operator)
    assert found.status_code == 200 and found.json()["ehc_id"] == card


def test_unbinding_a_wrong_link_needs_a_reason_and_is_audited(client, platform, clerk, card, institution):
    client.post(URL, json={"system": "mrn", "value": "MR-WRONG", "ehc_id": card}, headers=clerk)
    body = {"system": "mrn", "value": "MR-WRONG", "ehc_id": card}
    problem(client.request("DELETE", URL, json={**body, "reason": " "}, headers=clerk), 422, "reason_required")
    assert client.request("DELETE", URL, json={**body, "reason": "typo at registration"}, headers=clerk).status_code == 204
    problem(client.request("DELETE", URL, json={**body, "reason": "again"}, headers=clerk), 404, "identifier_not_found")
    problem(client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "MR-WRONG"}, headers=clerk),
            404, "person_not_found")
    # Now free for the right person.
    someone = client.post("/api/v1/cards", json=OTHER, headers=clerk).json()["ehc_id"]
    assert client.post(URL, json={**body, "ehc_id": someone}, headers=clerk).status_code == 201
    client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "MR-WRONG"}, headers=clerk)
    with platform.db.session() as session:
        purposes = {(e.purpose, e.action) for e in session.scalars(select(AuditEvent))}
        [unbound] = session.scalars(select(IdentifierUnbind)).all()
    assert {("mpi.identifiers", "change"), ("mpi.lookup", "read")} <= purposes
    # The reason stays with who and when; the wrong value itself is not kept.
    assert (unbound.system, unbound.reason, unbound.actor_kind) == (f"mrn:{institution}", "typo at registration",
                                                                    "staff")
    assert "MR-WRONG" not in str([getattr(unbound, c.key) for c in IdentifierUnbind.__table__.columns])


# -- binding by the resident's scanned code --------------------------------------------------------------

@pytest.fixture
def resident(client, platform) -> tuple[str, dict[str, str]]:
    return card_holder(client, platform, PERSON)


def test_the_hospital_system_binds_its_mrn_from_the_scanned_code(client, platform, his, resident,
                                                                  institution):
    ehc_id, headers = resident
    code = client.post("/api/v1/me/qr/dynamic", headers=headers).json()["text"]
    bound = client.post(URL, json={"system": "mrn", "value": "H-2024-0001", "code": code, "terminal_id": "W01"},
                        auth=his)
    assert bound.status_code == 201, bound.text
    assert bound.json()["ehc_id"] == ehc_id and bound.json()["use_id"]
    # The scan is the registration's card use, recorded once, at this hospital.
    with platform.db.session() as session:
        recorded = list(session.scalars(select(CardUse)))
    assert [(u.scene, u.institution_id, u.channel, u.terminal_id) for u in recorded] == [
        ("010101", institution, "0600", "W01")]
    # A dynamic code is single use: binding with it again is a replay.
    problem(client.post(URL, json={"system": "mrn", "value": "H-2024-0001", "code": code}, auth=his),
            422, "qr_replayed")
    problem(client.post(URL, json={"system": "mrn", "value": "H-1", "code": "EHC1:garbage"}, auth=his),
            422, "qr_malformed")
    found = client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "H-2024-0001"}, auth=his)
    assert found.status_code == 200 and found.json()["ehc_id"] == ehc_id
    # The resident sees who looked them up in their access log.
    log = client.get("/api/v1/me/access-log", headers=headers)
    assert log.status_code == 200 and "mpi.lookup" in log.text
