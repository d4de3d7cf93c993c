"""Health records (issue 16): hospitals publish FHIR R4 resources over the signed FHIR door; the queue of
records waiting for their subject; versions and _history; a replaced document; consent (the scan window,
grants, denials, revocation, expiry, sensitive categories, break-glass) on every read path; the resident's
timeline and $everything; merges carry records along; nothing readable at rest. SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import importlib
import json
from datetime import timedelta

import pytest
from factories import make_institution, make_staff, person, resident_sign_in
from sqlalchemy import select, text
from fhir.resources.R4B import get_fhir_model_class
from test_fhir import FHIR_JSON

from ehc.institutions import service as institutions
from ehc.kit.clock import CHINA, utcnow
from ehc.kit.context import Actor
from ehc.mpi import service as mpi
from ehc.records.models import Consent, OwnEntry, RecordVersion

SID = "https://ehc.example/fhir/sid"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
RESIDENT = person("李秀英", __import__("datetime").date(1980, 4, 5), 61, False, phone="13912341001")


def valid(body: dict) -> dict:
    """Checked with fhir.resources (R4B) and with fhirclient's strict R4 model of the type."""
    kind = body["resourceType"]
    get_fhir_model_class(kind).model_validate(body)
    getattr(importlib.import_module(f"fhirclient.models.{kind.lower()}"), kind)(body)
    return body


def mrn(institution: str, value: str) -> dict:
    return {"identifier": {"system": f"{SID}/mrn/{institution}", "value": value}}


def condition(subject: dict, code: str = "I10", display: str = "Essential hypertension") -> dict:
    return {"resourceType": "Condition", "subject": subject, "recordedDate": "2026-11-02",
            "code": {"coding": [{"system": ICD10, "code": code, "display": display}]},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]}}


def observation(subject: dict, value: float = 128) -> dict:
    return {"resourceType": "Observation", "status": "final", "subject": subject,
            "effectiveDateTime": "2026-11-03T09:30:00+08:00",
            "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]},
            "valueQuantity": {"value": value, "unit": "mmHg"},
            "contained": [{"resourceType": "Patient", "id": "p", "name": [{"text": "李秀英"}]}],
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">李秀英 128</div>"}}


def document(subject: dict, pdf: bytes = b"%PDF-1.4 discharge summary of \xe6\x9d\x8e", **extra) -> dict:
    return {"resourceType": "DocumentReference", "status": "current", "subject": subject, "date": "2026-11-04T10:00:00+08:00",
            "type": {"coding": [{"system": LOINC, "code": "18842-5", "display": "Discharge summary"}]},
            "content": [{"attachment": {"contentType": "application/pdf", "data": base64.b64encode(pdf).decode()}}],
            **extra}


def post(client, his, resource: dict, kind: str | None = None):  # noqa: ANN001, ANN201
    return client.post(f"/fhir/{kind or resource['resourceType']}", content=json.dumps(resource),
                       headers={"Content-Type": FHIR_JSON}, auth=his)


def outcome(answer, status: int) -> dict:  # noqa: ANN001
    assert answer.status_code == status, answer.text
    body = valid(answer.json())
    assert body["resourceType"] == "OperationOutcome"
    return body


def code_of(body: dict) -> str:
    return body["issue"][0]["details"]["coding"][0]["code"]


@pytest.fixture
def world(platform, client, institution, his):  # noqa: ANN001, ANN201
    """A resident with a card (bound to MRN0001 at the test hospital), a second hospital with its system,
    a doctor at each."""
    made = client.post("/api/v1/cards", json=RESIDENT)
    assert made.status_code == 201, made.text
    ehc_id = made.json()["ehc_id"]
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        holder = mpi.find_by_identifier(ctx, mpi.Identifier("doc:01", RESIDENT["document"]["number"]))
        mpi.add_identifier(ctx, holder, mpi.Identifier(f"mrn:{institution}", "MRN0001"))
        person_id = holder.id
    make_institution(platform, "inst-other-02", uscc="12510000MB7654321X", name="Second Hospital", region_code="510104")
    from factories import hospital_system  # noqa: PLC0415 - the factories module is the tests' own
    return {"ehc_id": ehc_id, "person_id": person_id, "resident": resident_sign_in(client, platform, RESIDENT["phone"]),
            "his": his, "other_his": hospital_system(platform, "inst-other-02"),
            "doctor": make_staff(platform, client, "doctor", institution),
            "other_doctor": make_staff(platform, client, "doctor", "inst-other-02")}


def test_publish_validate_seal_version_and_replace(platform, client, institution, world) -> None:
    his = world["his"]
    # Subject by the hospital's own MRN: stored, served with our id, versionId and Patient/<EHC ID>.
    made = post(client, his, condition(mrn(institution, "mrn0001")))
    assert made.status_code == 201, made.text
    assert made.headers["content-type"].startswith(FHIR_JSON)
    stored = valid(made.json())
    assert stored["subject"] == {"reference": f"Patient/{world['ehc_id']}"} and stored["meta"]["versionId"] == "1"
    # A retry of the same body is stored once.
    again = post(client, his, condition(mrn(institution, "mrn0001")))
    assert again.status_code == 200 and again.json()["id"] == stored["id"]
    # By EHC ID; the contained Patient and narrative are gone at rest and in the answer.
    obs = valid(post(client, his, observation({"reference": f"Patient/{world['ehc_id']}"})).json())
    assert "contained" not in obs and "text" not in obs

    # Bad input: not JSON, not FHIR, wrong type, a field wrong, another hospital's MRN system, an attachment too big.
    assert code_of(outcome(client.post("/fhir/Condition", content=b"not json", auth=his), 400)) == "fhir_body_invalid"
    assert code_of(outcome(post(client, his, {"hello": 1}, "Condition"), 400)) == "fhir_body_invalid"
    assert code_of(outcome(post(client, his, {"resourceType": "Patient"}, "Patient"), 422)) == "record_type_not_supported"
    assert code_of(outcome(post(client, his, condition(mrn(institution, "X")), "Observation"), 400)) == "record_type_mismatch"
    broken = condition(mrn(institution, "mrn0001"))
    broken["recordedDate"] = "yesterday"
    bad = outcome(post(client, his, broken), 400)
    assert code_of(bad) == "fhir_resource_invalid" and any("recordedDate" in e for i in bad["issue"]
                                                           for e in i.get("expression", []))
    foreign = outcome(post(client, his, condition(mrn("inst-other-02", "SZ-1"))), 422)
    assert code_of(foreign) == "record_subject_system_not_allowed"
    huge = document({"reference": f"Patient/{world['ehc_id']}"}, pdf=b"0" * (21 * 1024 * 1024))
    assert code_of(outcome(post(client, his, huge), 413)) == "record_attachment_too_large"
    with platform.db.session() as session:
        assert session.scalar(select(text("count(*)")).select_from(RecordVersion)) == 2  # nothing half-stored

    # A correction is a new version; _history lists both; vread reads the first.
    corrected = condition(mrn(institution, "MRN0001"), "I11", "Hypertensive heart disease")
    answer = client.put(f"/fhir/Condition/{stored['id']}", content=json.dumps(corrected), auth=his)
    assert answer.status_code == 201 and answer.json()["meta"]["versionId"] == "2"
    assert client.put(f"/fhir/Condition/{stored['id']}", content=json.dumps(corrected), auth=his).status_code == 200
    history = valid(client.get(f"/fhir/Condition/{stored['id']}/_history", auth=his).json())
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    first = valid(client.get(f"/fhir/Condition/{stored['id']}/_history/1", auth=his).json())
    assert first["code"]["coding"][0]["code"] == "I10"
    # Another hospital corrects nothing of ours.
    assert code_of(outcome(client.put(f"/fhir/Condition/{stored['id']}", content=json.dumps(corrected),
                                      auth=world["other_his"]), 403)) == "record_not_yours"

    # A replaced document points to the one it replaces, which becomes superseded.
    doc = valid(post(client, his, document({"reference": f"Patient/{world['ehc_id']}"})).json())
    newer = valid(post(client, his, document({"reference": f"Patient/{world['ehc_id']}"}, pdf=b"%PDF v2",
                                             relatesTo=[{"code": "replaces",
                                                         "target": {"reference": f"DocumentReference/{doc['id']}"}}])).json())
    assert newer["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{doc['id']}"
    old = valid(client.get(f"/fhir/DocumentReference/{doc['id']}", auth=his).json())
    assert old["status"] == "superseded" and old["meta"]["versionId"] == "2"

    # At rest: sealed, no name, no ID number, no MRN, no PDF text.
    with platform.db.session() as session:
        dump = " ".join(str(v) for row in session.execute(select(RecordVersion)).all() for v in row[0].__dict__.values())
    for secret in ("李秀英", RESIDENT["document"]["number"], "MRN0001", "discharge summary", "Hypertensive"):
        assert secret not in dump


def test_a_record_for_an_unknown_mrn_waits_and_attaches_when_linked(platform, client, institution, world) -> None:
    his = world["his"]
    waiting = valid(post(client, his, condition(mrn(institution, "NEW-77"))).json())
    assert waiting["subject"] == {"display": "waiting for the master index"}
    assert client.get(f"/fhir/Condition/{waiting['id']}", auth=world["other_his"]).status_code == 404
    assert client.get("/api/v1/me/records", headers=world["resident"]).json()["entries"] == []
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        holder = mpi.resolve(ctx, world["person_id"])
        mpi.add_identifier(ctx, holder, mpi.Identifier(f"mrn:{institution}", "NEW-77"))
    mine = client.get("/api/v1/me/records", headers=world["resident"]).json()["entries"]
    assert [e["resource_id"] for e in mine] == [waiting["id"]]
    assert valid(client.get(f"/fhir/Condition/{waiting['id']}", auth=his).json())["subject"] == {
        "reference": f"Patient/{world['ehc_id']}"}


def test_a_waiting_record_attaches_when_a_batch_linkage_binds_the_number(platform, client, institution, world) -> None:
    """The batch linkage binds numbers in bulk (``mpi.persons.add_identifiers``): the hook hears of them too."""
    import pandas as pd  # noqa: PLC0415 - only this test builds a linkage frame

    from ehc.mpi.linkage import apply  # noqa: PLC0415

    waiting = valid(post(client, world["his"], condition(mrn(institution, "LIST-9"))).json())
    records = pd.DataFrame([{"unique_id": "r1", "mrn": "LIST-9", "name": None, "sex_code": None, "birth_date": None,
                             "phone": None, "address": None, "region_code": None, "id_system": None,
                             "id_number": None}], dtype=object)
    decisions = pd.DataFrame([("r1", world["person_id"], 20.0, 0.9999, "{}", "certain", "document")],
                             columns=["record_id", "person_id", "match_weight", "match_probability", "comparison",
                                      "grade", "reason"])
    outcome = apply.apply_decisions(platform, decisions, records, pd.DataFrame(), institution, None, "cli", False)
    assert outcome.new_links == 1
    mine = client.get("/api/v1/me/records", headers=world["resident"]).json()["entries"]
    assert [e["resource_id"] for e in mine] == [waiting["id"]]


def test_records_feed_the_statistics_store(platform, client, institution, world) -> None:
    """Counts by type, at the publishing hospital, through the hospital system's channel; a correction
    counts as one; nothing says a record was in a sensitive category."""
    from ehc.statistics import service as statistics  # noqa: PLC0415 - only this test reads the store
    from ehc.statistics.models import StatEvent  # noqa: PLC0415

    his, subject = world["his"], {"reference": f"Patient/{world['ehc_id']}"}
    stored = valid(post(client, his, condition(subject)).json())
    post(client, his, condition(subject, "F32", "Depressive episode"))  # mental health: sensitive
    post(client, his, observation(subject))
    post(client, his, document(subject))
    corrected = condition(subject, "I11", "Hypertensive heart disease")
    assert client.put(f"/fhir/Condition/{stored['id']}", content=json.dumps(corrected), auth=his).status_code == 201
    statistics.refresh(platform.db)
    with platform.db.session() as session:
        rows = session.scalars(select(StatEvent).where(StatEvent.source == "record")).all()
        assert sorted(r.kind for r in rows) == ["Condition", "Condition", "DocumentReference", "Observation", "correction"]
        assert {(r.institution_id, r.channel, r.region_code) for r in rows} == {(institution, "0600", "510104")}
        assert {r.sex for r in rows} == {"2"} and None not in {r.age_band for r in rows}  # GB/T 2261: female
        operator = statistics.Query(indicator="records_published", by="institution", period="total")
        table = statistics.table(platform.ctx(session, Actor.system()), operator)
        assert table.columns == [institution] and table.protected.shown(("all",)) == "<5"


def encounter(subject: dict, start: str) -> dict:
    return {"resourceType": "Encounter", "status": "finished", "subject": subject, "period": {"start": start},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}


def test_visits_count_with_and_without_the_card(platform, client, institution, world) -> None:
    """A visit (an Encounter's first version) counts "with the card" when the patient's card was
    verified at that hospital on the visit's China day; it waits until offline uses had time to arrive."""
    from ehc.records import service as records  # noqa: PLC0415 - only this test moves the settling time
    from ehc.statistics import service as statistics  # noqa: PLC0415 - only this test reads the store
    from ehc.statistics.models import StatEvent  # noqa: PLC0415

    his, subject = world["his"], {"reference": f"Patient/{world['ehc_id']}"}
    scan(client, world, his)  # the card, verified at the test hospital now
    today = utcnow().astimezone(CHINA)
    visits = {
        "with_card": post(client, his, encounter(subject, today.isoformat())),
        "elsewhere": post(client, world["other_his"], encounter(subject, today.isoformat())),
        "the_day_before": post(client, his, encounter(subject, (today - timedelta(days=1)).isoformat())),
        "not_linked_yet": post(client, his, encounter(mrn(institution, "NEW-88"), today.isoformat())),
    }
    assert all(answer.status_code == 201 for answer in visits.values()), [a.text for a in visits.values()]
    post(client, his, condition(subject))  # not a visit
    statistics.refresh(platform.db)
    with platform.db.session() as session:  # published just now: not counted yet
        assert session.scalars(select(StatEvent).where(StatEvent.source == "visit")).all() == []
        for version in session.scalars(select(RecordVersion)):  # as if published VISIT_SETTLE ago
            version.recorded_at -= records.VISIT_SETTLE
    statistics.refresh(platform.db)
    with platform.db.session() as session:
        rows = session.scalars(select(StatEvent).where(StatEvent.source == "visit").order_by(StatEvent.source_id)).all()
        assert [r.kind for r in rows] == ["with_card", "without_card", "without_card", "without_card"]
        assert [r.institution_id for r in rows] == [institution, "inst-other-02", institution, institution]
        assert rows[2].day == (today - timedelta(days=1)).date()
        table = statistics.table(platform.ctx(session, Actor.system()),
                                 statistics.Query(indicator="visits", by="card", period="total"))
        assert table.columns == ["with_card", "without_card"]
        events = statistics.table(platform.ctx(session, Actor.system()),
                                  statistics.Query(indicator="visits", by="card", period="total"), cube=False)
        assert events.columns == table.columns and events.records() == table.records()


def scan(client, world, his) -> None:  # noqa: ANN001
    code = client.post("/api/v1/me/qr/dynamic", headers=world["resident"]).json()["text"]
    answer = client.post("/api/v1/qr/verify", json={"code": code, "scene": "0101011", "channel": "0100"}, auth=his)
    assert answer.status_code == 200, answer.text


def test_consent_on_every_read_path(platform, client, institution, world) -> None:
    his, other, doctor = world["his"], world["other_his"], world["other_doctor"]
    subject = {"reference": f"Patient/{world['ehc_id']}"}
    plain = valid(post(client, his, condition(subject)).json())
    mental = valid(post(client, his, condition(subject, "F32.1", "Depressive episode")).json())
    ehc_id = world["ehc_id"]

    def reads(headers=None, auth=None) -> dict:  # noqa: ANN001
        """What each read path lets the second hospital see: status codes, and ids where a list answers."""
        kw = {"headers": headers or {}, "auth": auth}
        timeline = client.get(f"/api/v1/records/patients/{ehc_id}", **kw)
        everything = client.get(f"/fhir/Patient/{ehc_id}/$everything", **kw)
        search = client.get(f"/fhir/Condition?patient={ehc_id}", **kw)
        return {
            "timeline": sorted(e["resource_id"] for e in timeline.json()["entries"]) if timeline.status_code == 200 else timeline.status_code,
            "everything": sorted(e["resource"]["id"] for e in everything.json()["entry"] if e["resource"]["resourceType"] == "Condition")
            if everything.status_code == 200 else everything.status_code,
            "search": sorted(e["resource"]["id"] for e in search.json()["entry"]) if search.status_code == 200 else search.status_code,
            "read_plain": client.get(f"/fhir/Condition/{plain['id']}", **kw).status_code,
            "read_mental": client.get(f"/fhir/Condition/{mental['id']}", **kw).status_code,
        }

    nothing = {"timeline": 403, "everything": 403, "search": 403, "read_plain": 403, "read_mental": 403}
    only_plain = {"timeline": [plain["id"]], "everything": [plain["id"]], "search": [plain["id"]], "read_plain": 200,
                  "read_mental": 403}
    both = sorted([plain["id"], mental["id"]])
    all_of_it = {"timeline": both, "everything": both, "search": both, "read_plain": 200, "read_mental": 200}

    # Not consented: nobody else reads, neither the doctor nor the system.
    assert reads(doctor) == nothing and reads(auth=other) == nothing
    # The publisher reads its own records.
    assert reads(auth=his)["read_mental"] == 200
    # A scan of the dynamic code at the second hospital: non-sensitive records for 24 hours.
    scan(client, world, other)
    assert reads(doctor) == only_plain and reads(auth=other) == only_plain
    with platform.db.session() as session:  # 25 hours later, the window has closed
        session.execute(text("UPDATE card_uses SET at = at - interval '25 hours'") if session.bind.dialect.name == "postgresql"
                        else text("UPDATE card_uses SET at = datetime(at, '-25 hours')"))
    assert reads(doctor) == nothing

    # The resident grants the second hospital conditions for 30 days: plain only (mental is sensitive).
    granted = client.post("/api/v1/me/records/consents", headers=world["resident"],
                          json={"institution_id": "inst-other-02", "categories": ["conditions"], "purpose": "treatment", "days": 30})
    assert granted.status_code == 201, granted.text
    assert reads(doctor) == only_plain
    # A grant naming the sensitive category: both.
    named = client.post("/api/v1/me/records/consents", headers=world["resident"],
                        json={"institution_id": "inst-other-02", "categories": ["conditions", "mental"], "days": 1}).json()
    assert reads(doctor) == all_of_it
    # Revoked at once.
    assert client.post(f"/api/v1/me/records/consents/{named['id']}/revoke", headers=world["resident"]).json()["active"] is False
    assert reads(doctor) == only_plain
    # Expired.
    with platform.db.session() as session:
        for consent in session.scalars(select(Consent)):
            consent.starts_at, consent.ends_at = consent.starts_at - timedelta(days=40), consent.starts_at - timedelta(days=10)
    assert reads(doctor) == nothing

    # Department grants: internal medicine (0300) of the second hospital, not its surgery (0400), nor a
    # reader who names no department. Staff carry their account's department; a system names it per call.
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        place = institutions.find_institution(session, "inst-other-02")
        institutions.add_department(ctx, place, code="0300")
        institutions.add_department(ctx, place, code="0400")
    internist = make_staff(platform, client, "doctor", "inst-other-02", department="0300")
    surgeon = make_staff(platform, client, "doctor", "inst-other-02", department="0400")
    dept = client.post("/api/v1/me/records/consents", headers=world["resident"],
                       json={"institution_id": "inst-other-02", "department": "0300", "categories": ["conditions"],
                             "purpose": "treatment", "days": 30})
    assert dept.status_code == 201 and dept.json()["department"] == "0300", dept.text
    internal_medicine, surgery = {"X-EHC-Department": "0300"}, {"X-EHC-Department": "0400"}
    assert reads(internist) == only_plain and reads(internal_medicine, auth=other) == only_plain
    assert reads(surgeon) == nothing and reads(surgery, auth=other) == nothing
    assert reads(doctor) == nothing and reads(auth=other) == nothing
    unknown = client.get(f"/api/v1/records/patients/{ehc_id}", headers={"X-EHC-Department": "0500"}, auth=other)
    assert unknown.status_code == 422 and unknown.json()["code"] == "department_not_found"
    missing = client.post("/api/v1/me/records/consents", headers=world["resident"],
                          json={"institution_id": "inst-other-02", "department": "0500", "categories": ["all"], "days": 1})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "department"
    assert client.post(f"/api/v1/me/records/consents/{dept.json()['id']}/revoke", headers=world["resident"]).status_code == 200
    assert reads(internist) == nothing
    # A department's denial overrides the scan for that department only.
    client.post("/api/v1/me/records/consents", headers=world["resident"],
                json={"effect": "deny", "institution_id": "inst-other-02", "department": "0300", "categories": ["all"]})
    scan(client, world, other)
    assert reads(internist) == nothing and reads(internal_medicine, auth=other) == nothing
    assert reads(surgeon) == only_plain and reads(doctor) == only_plain and reads(auth=other) == only_plain

    # A deny wins over a scan.
    client.post("/api/v1/me/records/consents", headers=world["resident"],
                json={"effect": "deny", "institution_id": "inst-other-02", "categories": ["all"]})
    scan(client, world, other)
    assert reads(doctor) == nothing

    # Break-glass: everything, flagged, texted, in the resident's list and the auditors'.
    glass = {**doctor, "X-Break-Glass-Reason": "unconscious%20patient%2C%20ER"}
    assert reads(glass) == all_of_it
    assert client.get(f"/api/v1/records/patients/{ehc_id}", headers={**doctor, "X-Break-Glass-Reason": "x"}).status_code == 422
    cashier = make_staff(platform, client, "cashier", "inst-other-02")
    assert client.get(f"/fhir/Condition/{plain['id']}", headers={**cashier, "X-Break-Glass-Reason": "emergency!"}).status_code == 403
    notices = client.get("/api/v1/me/records/break-glass", headers=world["resident"]).json()
    assert notices and notices[0]["reason"] == "unconscious patient, ER" and notices[0]["institution_id"] == "inst-other-02"
    auditor = make_staff(platform, client, "auditor", None)
    assert client.get("/api/v1/records/break-glass", headers=auditor).json()[0]["id"] == notices[0]["id"]
    outbox = client.get("/dev/outbox")
    with platform.db.session() as session:
        from ehc.accounts import service as accounts  # noqa: PLC0415 - only this test reads the SMS outbox
        texts = [m.text for m in accounts.outbox(session, platform.vault, phone=RESIDENT["phone"], limit=5)]
    assert any("emergency" in t for t in texts), (outbox.status_code, texts)
    # Every read is in the resident's access log, the break-glass ones standing out by purpose.
    log = client.get("/api/v1/me/access-log?limit=100", headers=world["resident"]).json()["items"]
    purposes = {e["purpose"] for e in log}
    assert {"records.read", "records.break_glass"} <= purposes


def test_resident_timeline_filters_everything_and_merge(platform, client, institution, world) -> None:
    his = world["his"]
    subject = {"reference": f"Patient/{world['ehc_id']}"}
    post(client, his, condition(subject))
    post(client, his, observation(subject))
    post(client, world["other_his"], observation(subject, 140))
    me = world["resident"]
    every = client.get("/api/v1/me/records", headers=me).json()
    assert every["basis"] == "self" and len(every["entries"]) == 3
    assert [e["title"] for e in every["entries"]][0].startswith("Systolic blood pressure")
    only_obs = client.get("/api/v1/me/records?type=Observation", headers=me).json()["entries"]
    assert {e["resource_type"] for e in only_obs} == {"Observation"} and len(only_obs) == 2
    assert len(client.get("/api/v1/me/records?institution=inst-other-02", headers=me).json()["entries"]) == 1
    assert [e["resource_type"] for e in client.get("/api/v1/me/records?since=2026-11-03&until=2026-11-03",
                                                    headers=me).json()["entries"]] == ["Observation", "Observation"]
    bundle = client.get("/api/v1/me/records/everything", headers=me).json()
    assert valid(bundle)["type"] == "searchset" and bundle["total"] == 3

    # A merge carries the records along, an unmerge brings them back.
    second = client.post("/api/v1/cards", json=person("李秀英", __import__("datetime").date(1980, 4, 5), 63, False)).json()
    post(client, his, condition({"reference": f"Patient/{second['ehc_id']}"}, "E11", "Type 2 diabetes"))
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        source = mpi.resolve(ctx, session.scalar(select(RecordVersion.person_id).where(RecordVersion.person_id != world["person_id"])))
        merge = mpi.merge(ctx, source, mpi.resolve(ctx, world["person_id"]), "same person")
        merge_id = merge.id
    assert len(client.get("/api/v1/me/records", headers=me).json()["entries"]) == 4
    with platform.db.session() as session:
        mpi.unmerge(platform.ctx(session, Actor.system()), merge_id, "not the same")
    assert len(client.get("/api/v1/me/records", headers=me).json()["entries"]) == 3


def test_a_guardian_reads_and_manages_a_family_members_records(platform, client, institution, world) -> None:
    """The resident binds a child; the guardian reads the child's timeline, $everything, first page and PDF
    and manages the child's grants with ``member``; the child's access log shows the guardian's reads; a
    card the resident does not guard is not found."""
    me, his = world["resident"], world["his"]
    child = client.post("/api/v1/me/family", headers=me, json={
        **person("李小宝", __import__("datetime").date(2017, 6, 1), 64, False), "relation": "child"})
    assert child.status_code == 201, child.text
    ward = child.json()["ehc_id"]
    post(client, his, condition({"reference": f"Patient/{ward}"}, "J45", "Asthma"))
    post(client, his, condition({"reference": f"Patient/{ward}"}, "F90.0", "Attention deficit"))
    post(client, his, condition({"reference": f"Patient/{world['ehc_id']}"}))  # the guardian's own

    timeline = client.get(f"/api/v1/me/records?member={ward}", headers=me).json()
    assert timeline["basis"] == "guardian" and sorted(e["title"] for e in timeline["entries"]) == ["Asthma", "Attention deficit"]
    assert client.get("/api/v1/me/records", headers=me).json()["basis"] == "self"
    assert len(client.get("/api/v1/me/records", headers=me).json()["entries"]) == 1
    bundle = client.get(f"/api/v1/me/records/everything?member={ward}", headers=me).json()
    assert valid(bundle)["total"] == 2
    summary = client.get(f"/api/v1/me/records/summary?member={ward}", headers=me).json()
    assert "Asthma" in [i["text"] for i in summary["chronic_conditions"]]
    added = client.post(f"/api/v1/me/records/summary/entries?member={ward}", headers=me,
                        json={"kind": "allergy", "text": "花生 peanuts"})
    assert added.status_code == 201, added.text
    assert [i["text"] for i in client.get(f"/api/v1/me/records/summary?member={ward}", headers=me).json()["allergies"]] \
        == ["花生 peanuts"]
    assert client.get("/api/v1/me/records/summary", headers=me).json()["allergies"] == []
    pdf = client.get(f"/api/v1/me/records/summary.pdf?member={ward}", headers=me)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # The guardian grants the second hospital the child's conditions; its doctor reads them.
    granted = client.post(f"/api/v1/me/records/consents?member={ward}", headers=me,
                          json={"institution_id": "inst-other-02", "categories": ["conditions"], "days": 7})
    assert granted.status_code == 201, granted.text
    assert [c["id"] for c in client.get(f"/api/v1/me/records/consents?member={ward}", headers=me).json()] == [granted.json()["id"]]
    assert client.get("/api/v1/me/records/consents", headers=me).json() == []
    seen = client.get(f"/api/v1/records/patients/{ward}", headers=world["other_doctor"]).json()
    assert [e["title"] for e in seen["entries"]] == ["Asthma"]  # the sensitive one is not named by the grant
    assert client.post(f"/api/v1/me/records/consents/{granted.json()['id']}/revoke?member={ward}",
                       headers=me).json()["active"] is False

    # The child's "who looked at my data": the guardian's reads and changes, as a resident's.
    log = client.get(f"/api/v1/me/access-log?member={ward}&limit=100", headers=me).json()["items"]
    mine = [e for e in log if e["purpose"] in ("records.guardian", "records.consent")]
    assert {e["purpose"] for e in mine} == {"records.guardian", "records.consent"}
    assert all(e["actor_kind"] == "resident" for e in mine)

    # A card the resident does not guard: not found, on every resident path.
    stranger = world["ehc_id"]
    other = client.post("/api/v1/cards", json=person("王五", __import__("datetime").date(1975, 1, 1), 65, True)).json()["ehc_id"]
    for path in ("/api/v1/me/records", "/api/v1/me/records/everything", "/api/v1/me/records/summary",
                 "/api/v1/me/records/summary.pdf", "/api/v1/me/records/consents", "/api/v1/me/records/break-glass"):
        answer = client.get(f"{path}?member={other}", headers=me)
        assert answer.status_code == 404 and answer.json()["code"] == "card_not_found", (path, answer.text)
    # Nor does ``member`` name the resident's own card: without it, the resident reads their own.
    assert client.get(f"/api/v1/me/records?member={stranger}", headers=me).status_code == 404


def first_page_records(subject: dict) -> list[dict]:
    """What a hospital publishes that belongs on the first page, and some that does not."""
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    resolved = condition(subject, "J06.9", "Acute upper respiratory infection")
    resolved["clinicalStatus"] = {"coding": [{"system": clinical, "code": "resolved"}]}
    withdrawn = condition(subject, "E11", "Type 2 diabetes")
    withdrawn["verificationStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                   "code": "entered-in-error"}]}
    return [
        {"resourceType": "AllergyIntolerance", "patient": subject, "recordedDate": "2026-10-01",
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                        "code": "active"}]},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "764146007", "display": "Penicillin"}],
                  "text": "青霉素 Penicillin"}},
        condition(subject),  # I10: chronic
        resolved,  # resolved, not a chronic code: not on the page
        withdrawn,  # entered in error: not on the page
        condition(subject, "F32.1", "Depressive episode"),  # active, sensitive: on the resident's own page
        {"resourceType": "Procedure", "status": "completed", "subject": subject, "performedDateTime": "2019-05-06",
         "code": {"text": "Appendectomy 阑尾切除术"}},
        {"resourceType": "Immunization", "status": "completed", "patient": subject, "occurrenceDateTime": "2021-04-01",
         "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "213", "display": "COVID-19 vaccine"}]}},
        {"resourceType": "Observation", "status": "final", "subject": subject, "effectiveDateTime": "2026-09-01",
         "code": {"coding": [{"system": LOINC, "code": "882-1", "display": "ABO and Rh group"}]},
         "valueCodeableConcept": {"text": "A Rh+"}},
        observation(subject),  # a blood pressure: not on the page
    ]


def test_basic_health_record_first_page(platform, client, institution, world) -> None:
    """The first page: hospitals' records sorted into their sections with hospital and date, sensitive ones
    on the resident's own page, entries of the resident's own (added, replaced, removed, sealed at rest)."""
    subject = {"reference": f"Patient/{world['ehc_id']}"}
    for resource in first_page_records(subject):
        assert post(client, world["his"], valid(resource)).status_code == 201
    me = world["resident"]
    page = client.get("/api/v1/me/records/summary", headers=me)
    assert page.status_code == 200, page.text
    page = page.json()

    def texts(section: str) -> list[str]:
        return [i["text"] for i in page[section]]

    assert texts("allergies") == ["青霉素 Penicillin"]
    allergy = page["allergies"][0]
    assert allergy["source"] == "record" and allergy["institution_name"] == "Test People's Hospital"
    assert allergy["institution_id"] == institution and allergy["on"] == "2026-10-01"
    assert sorted(texts("chronic_conditions")) == ["Depressive episode", "Essential hypertension"]
    assert {i["text"]: i["sensitivity"] for i in page["chronic_conditions"]}["Depressive episode"] == "mental"
    assert texts("operations") == ["Appendectomy 阑尾切除术"] and page["operations"][0]["on"] == "2019-05-06"
    assert texts("immunizations") == ["COVID-19 vaccine"]
    assert texts("blood_type") == ["ABO and Rh group: A Rh+"] and page["family_history"] == []

    # The resident's own entries: a blood type (a second one replaces the first), an allergy, family history.
    def add(body: dict, status: int = 201) -> dict:
        answer = client.post("/api/v1/me/records/summary/entries", json=body, headers=me)
        assert answer.status_code == status, answer.text
        return answer.json()

    add({"kind": "blood_type", "abo": "B", "rh": "negative"})
    mine = add({"kind": "blood_type", "abo": "O", "rh": "positive"})
    assert mine["text"] == "O Rh+" and mine["source"] == "self"
    sulfa = add({"kind": "allergy", "text": "  磺胺类药物   sulfonamides ", "on": "2001-03-04"})
    assert sulfa["text"] == "磺胺类药物 sulfonamides" and sulfa["section"] == "allergies"
    add({"kind": "family_history", "text": "父亲 高血压 Father: hypertension"})
    page = client.get("/api/v1/me/records/summary", headers=me).json()
    assert texts("blood_type") == ["ABO and Rh group: A Rh+", "O Rh+"]
    assert [(i["text"], i["source"]) for i in page["allergies"]] == [("青霉素 Penicillin", "record"),
                                                                       ("磺胺类药物 sulfonamides", "self")]
    assert texts("family_history") == ["父亲 高血压 Father: hypertension"]

    # Bad entries: problem+json with a stable code, the field named.
    for body, code in (({"kind": "diet", "text": "x"}, "summary_kind_invalid"),
                       ({"kind": "allergy", "text": "   "}, "summary_text_invalid"),
                       ({"kind": "blood_type", "abo": "C"}, "summary_blood_type_invalid"),
                       ({"kind": "blood_type", "abo": "A", "rh": "maybe"}, "summary_blood_type_invalid"),
                       ({"kind": "operation", "text": "x", "on": "2999-01-01"}, "summary_date_invalid")):
        refused = add(body, 422)
        assert refused["code"] == code, refused

    # At rest: the entries' words are sealed.
    with platform.db.session() as session:
        dump = " ".join(str(v) for row in session.execute(select(OwnEntry)).all() for v in row[0].__dict__.values())
    assert "磺胺" not in dump and "sulfonamides" not in dump and "hypertension" not in dump

    # Removing: one's own entries only; a hospital's record is not removable here.
    assert client.delete(f"/api/v1/me/records/summary/entries/{sulfa['id']}", headers=me).status_code == 204
    gone = client.delete(f"/api/v1/me/records/summary/entries/{sulfa['id']}", headers=me)
    assert gone.status_code == 404 and gone.json()["code"] == "summary_entry_not_found"
    hospitals = client.delete(f"/api/v1/me/records/summary/entries/{allergy['id']}", headers=me)
    assert hospitals.status_code == 404
    assert texts_now(client, me, "allergies") == ["青霉素 Penicillin"]
    # Clinicians do not read this page: it is the resident's.
    assert client.get("/api/v1/me/records/summary", headers=world["doctor"]).status_code == 403


def test_printable_summary_pdf(platform, client, institution, world, tmp_path) -> None:
    """One A4 PDF, headings in Chinese and English, the masked name and card id, the hospital's allergy,
    one's own entry and the recent records; text read back with poppler's pdftotext."""
    import subprocess  # noqa: PLC0415 - only this test runs a program

    subject = {"reference": f"Patient/{world['ehc_id']}"}
    for resource in first_page_records(subject):
        assert post(client, world["his"], resource).status_code == 201
    me = world["resident"]
    client.post("/api/v1/me/records/summary/entries", json={"kind": "family_history", "text": "母亲 糖尿病 Mother: diabetes"},
                headers=me)
    answer = client.get("/api/v1/me/records/summary.pdf", headers=me)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf" and answer.content.startswith(b"%PDF")
    assert "attachment" in answer.headers["content-disposition"]
    path = tmp_path / "summary.pdf"
    path.write_bytes(answer.content)
    pages = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    assert "595.28 x 841.89 pts (A4)" in pages
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for heading in ("居民健康档案摘要", "过敏 Allergies", "慢性病 Chronic conditions", "手术 Operations",
                    "家族史 Family history", "预防接种 Immunisations", "血型 Blood type", "近期记录 Recent records"):
        assert heading in flat, (heading, flat[:400])
    assert "青霉素 Penicillin" in flat and "Test People's Hospital" in flat and "2026-10-01" in flat
    assert "母亲 糖尿病 Mother: diabetes" in flat and "本人填写 self-reported" in flat
    assert "Systolic blood pressure" in flat  # from the timeline, not a first-page record
    ehc_id = world["ehc_id"]
    assert f"{ehc_id[:8]}…{ehc_id[-8:]}" in flat and ehc_id not in flat
    assert "李*英" in flat and "李秀英" not in flat
    assert client.get("/api/v1/me/records/summary.pdf", headers=world["doctor"]).status_code == 403


def test_printable_summary_without_a_cjk_font(monkeypatch, tmp_path) -> None:
    """Without Noto Sans CJK the summary is still made, in English, Chinese characters as "?"."""
    import subprocess  # noqa: PLC0415 - only these tests run a program
    from datetime import date  # noqa: PLC0415

    from ehc.records import printout  # noqa: PLC0415 - the layout alone, no database

    monkeypatch.setattr(printout.fonts, "add_cjk_font", lambda pdf: False)
    pdf = printout.render(masked_name="李*英", masked_card="ABCDEFGH…12345678", printed_on=date(2026, 12, 3),
                          sections={"allergies": [printout.Line("青霉素 Penicillin", "", None)]}, recent=[])
    (tmp_path / "plain.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "plain.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "Allergies" in text and "过敏" not in text and "Penicillin (self-reported)" in text


def texts_now(client, headers: dict, section: str) -> list[str]:  # noqa: ANN001
    return [i["text"] for i in client.get("/api/v1/me/records/summary", headers=headers).json()[section]]


def test_ihe_mhd_with_fhirclient_live(live_url, platform, client, institution, world) -> None:
    """ITI-65 Provide Document Bundle, ITI-67 Find Document References, ITI-68 Retrieve Document, driven by
    the independent ``fhirclient`` package against a live server, signed as the hospital's system."""
    from fhirclient.models.bundle import Bundle as R4Bundle  # noqa: PLC0415 - only this test uses them
    from fhirclient.models.documentreference import DocumentReference as R4DocumentReference  # noqa: PLC0415
    from test_fhir import SignedRequests, fhirclient_for  # noqa: PLC0415

    his = world["his"]
    server = fhirclient_for(live_url, auth=SignedRequests(his.app_id, his.key_id, his.private_key)).server
    pdf = b"%PDF-1.7 imaging report \x00\x01"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5e1ed2b4-0000-4000-8000-000000000001",
         "resource": {"resourceType": "List", "status": "current", "mode": "working",
                      "subject": {"reference": f"Patient/{world['ehc_id']}"}},
         "request": {"method": "POST", "url": "List"}},
        {"fullUrl": "urn:uuid:5e1ed2b4-0000-4000-8000-000000000002",
         "resource": {"resourceType": "DocumentReference", "status": "current", "subject": mrn(institution, "MRN0001"),
                      "date": "2026-11-05T08:00:00+08:00",
                      "type": {"coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}]},
                      "content": [{"attachment": {"contentType": "application/pdf",
                                                  "url": "urn:uuid:5e1ed2b4-0000-4000-8000-000000000003"}}]},
         "request": {"method": "POST", "url": "DocumentReference"}},
        {"fullUrl": "urn:uuid:5e1ed2b4-0000-4000-8000-000000000003",
         "resource": {"resourceType": "Binary", "contentType": "application/pdf", "data": base64.b64encode(pdf).decode()},
         "request": {"method": "POST", "url": "Binary"}}]}
    answer = server.post_json("", bundle)  # ITI-65, to the base URL
    assert answer.status_code == 200, answer.text
    response = R4Bundle(answer.json())
    assert response.type == "transaction-response" and len(response.entry) == 3
    location = response.entry[1].response.location
    assert response.entry[1].response.status == "201 Created" and location.startswith("DocumentReference/")

    found = R4DocumentReference.where(struct={"patient": world["ehc_id"]}).perform(server)  # ITI-67
    assert found.total == 1
    doc = found.entry[0].resource
    assert doc.subject.reference == f"Patient/{world['ehc_id']}" and doc.content[0].attachment.size == len(pdf)
    assert server.request_data(doc.content[0].attachment.url) == pdf  # ITI-68

    # ITI-67 by the patient's identifier (the hospital's MRN, the EHC ID) and by status, once a newer
    # document replaces the first.
    newer = post(client, his, document({"reference": f"Patient/{world['ehc_id']}"}, pdf=b"%PDF-1.7 v2",
                                       relatesTo=[{"code": "replaces", "target": {"reference": f"DocumentReference/{doc.id}"}}]))
    assert newer.status_code == 201, newer.text
    by_mrn = {"patient.identifier": f"{SID}/mrn/{institution}|MRN0001"}

    def ids(struct: dict) -> set[str]:
        found = R4DocumentReference.where(struct=struct).perform(server)
        return {e.resource.id for e in found.entry or []}

    assert ids(by_mrn) == {doc.id, newer.json()["id"]}
    assert ids({**by_mrn, "status": "current"}) == {newer.json()["id"]}
    assert ids({**by_mrn, "status": "superseded"}) == {doc.id}
    assert ids({"patient.identifier": f"{SID}/ehc-id|{world['ehc_id']}", "status": "current,superseded"}) == \
        {doc.id, newer.json()["id"]}
    statement = server.capabilityStatement
    documents = next(r for r in statement.rest[0].resource if r.type == "DocumentReference")
    assert {"patient", "patient.identifier", "status"} <= {p.name for p in documents.searchParam}
    assert "everything" in {o.name for o in statement.rest[0].resource[0].operation}

    # Another hospital's system without consent gets nothing of it, by any search parameter or the bytes.
    other = world["other_his"]
    stranger = fhirclient_for(live_url, auth=SignedRequests(other.app_id, other.key_id, other.private_key)).server
    with pytest.raises(Exception) as refused:
        stranger.request_data(doc.content[0].attachment.url)
    assert refused.value.response.status_code == 403

    def search(params: dict, auth) -> tuple[int, str]:  # noqa: ANN001
        answer = client.get("/fhir/DocumentReference", params=params, auth=auth)
        body = valid(answer.json())
        return answer.status_code, (code_of(body) if body["resourceType"] == "OperationOutcome" else body["type"])

    assert search(by_mrn, other) == (403, "records_consent_required")
    # An unknown number of another institution answers as a known one does: the search tells no stranger
    # which numbers exist; the hospital's own unknown number is simply not found.
    assert search({"patient.identifier": f"{SID}/mrn/{institution}|NOBODY-9"}, other) == (403, "records_consent_required")
    assert search({"patient.identifier": f"{SID}/mrn/{institution}|NOBODY-9"}, his) == (404, "patient_not_found")
    assert search({"patient.identifier": f"urn:oid:2.16.156.10011.1.3|{RESIDENT['document']['number']}"}, his) == \
        (422, "record_search_system_not_allowed")
    assert search({"patient.identifier": "MRN0001"}, his) == (422, "record_search_identifier_invalid")
    assert search({**by_mrn, "status": "draft"}, his) == (422, "record_search_status_invalid")
    assert search({}, his) == (422, "record_search_needs_patient")
    # Once the resident's dynamic code is scanned there, the other hospital finds both by the MRN.
    scan(client, world, other)
    assert search(by_mrn, other) == (200, "searchset")
    assert len(client.get("/fhir/DocumentReference", params={**by_mrn, "status": "current"}, auth=other).json()["entry"]) == 1


def test_retries_and_corrections_under_races_on_postgresql(platform, client, institution, world) -> None:
    """Eight concurrent retries of one record store it once; eight concurrent corrections of one record make
    versions 2 to 9, each once, with exactly one current (PostgreSQL: the writers really run at once)."""
    if not platform.settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: the race is PostgreSQL's")
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only this test runs threads
    from ehc.kit.codes import Channel  # noqa: PLC0415
    from ehc.records import service as records  # noqa: PLC0415
    from ehc.fhir.patient import internal_system  # noqa: PLC0415

    machine = Actor(kind="machine", channel=Channel.HOSPITAL_SYSTEM, id="his", institution_id=institution,
                    roles=frozenset({"hospital_system"}))

    def run(work):  # noqa: ANN001, ANN202
        with platform.db.session() as session:
            return work(platform.ctx(session, machine))

    body = condition(mrn(institution, "MRN0001"))
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: run(lambda ctx: records.publish(ctx, body, "Condition", internal_system).row.resource_id),
                            range(8)))
    assert len(set(ids)) == 1
    resource_id = ids[0]

    def correct(n: int) -> int:
        fixed = condition(mrn(institution, "MRN0001"), f"I1{n}", f"correction {n}")
        return run(lambda ctx: records.correct(ctx, fixed, "Condition", resource_id, internal_system).row.version)

    with ThreadPoolExecutor(8) as pool:
        versions = sorted(pool.map(correct, range(8)))
    assert versions == list(range(2, 10))
    with platform.db.session() as session:
        rows = session.scalars(select(RecordVersion).where(RecordVersion.resource_id == resource_id)).all()
        assert sorted(r.version for r in rows) == list(range(1, 10)) and sum(r.current for r in rows) == 1


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_record_pages_in_chromium(live_server, sqlite_platform, chromium, lang) -> None:
    """The resident's timeline (filter by kind) and consent page, and a doctor's view once consented, in both
    languages, in a real Chromium."""
    from ehc.apps import service as apps  # noqa: PLC0415 - the page tests build their world directly
    from ehc.client import SM2Auth  # noqa: PLC0415
    from ehc.crypto import SM2PrivateKey  # noqa: PLC0415
    from factories import ARTIFACTS, PASSWORD  # noqa: PLC0415
    from fastapi.testclient import TestClient  # noqa: PLC0415
    from ehc.app import create_app  # noqa: PLC0415
    from ehc.accounts import service as accounts  # noqa: PLC0415

    platform = sqlite_platform
    inst = make_institution(platform, "inst-page-01", uscc="12510000MB1111111X", name="First People's Hospital",
                            region_code="510104")
    key = SM2PrivateKey.generate()
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        app = apps.create_app(ctx, name="HIS", institution_id=inst)
        his = SM2Auth(app.id, apps.add_key(ctx, app.id, key.public_key.to_pem().decode()).key_id, key)
        accounts.create_staff(ctx, username=f"dr-{lang}", password=PASSWORD, role="doctor", institution_id=inst)
        institutions.add_department(ctx, institutions.find_institution(session, inst), code="0300")
    with TestClient(create_app(platform)) as client:
        ehc_id = client.post("/api/v1/cards", json=RESIDENT).json()["ehc_id"]
        subject = {"reference": f"Patient/{ehc_id}"}
        assert post(client, his, condition(subject)).status_code == 201
        assert post(client, his, observation(subject)).status_code == 201
        headers = resident_sign_in(client, platform, RESIDENT["phone"])
        resident = headers["Authorization"].removeprefix("Bearer ")
        child = client.post("/api/v1/me/family", headers=headers, json={
            **person("李小宝", __import__("datetime").date(2017, 6, 1), 64, False), "relation": "child"}).json()["ehc_id"]
        assert post(client, his, condition({"reference": f"Patient/{child}"}, "J45", "Asthma")).status_code == 201
        doctor_token = client.post("/api/v1/auth/staff/token", json={"username": f"dr-{lang}", "password": PASSWORD}
                                   ).json()["access_token"]
    zh = lang == "zh"
    host = live_server.split("//")[1].split(":")[0]
    context = chromium.new_context(locale="zh-CN" if zh else "en-US", extra_http_headers={"Accept-Language": lang})
    context.add_cookies([{"name": "ehc_resident", "value": resident, "domain": host, "path": "/"}])
    page = context.new_page()
    page.goto(f"{live_server}/me/records")
    assert page.locator("h1").inner_text() == ("我的健康档案" if zh else "My health records")
    assert page.locator("tr.record").count() == 2
    page.select_option("#type", "Observation")
    page.locator("form.filters button").click()
    assert page.locator("tr.record").count() == 1
    assert "Systolic blood pressure" in page.locator("tr.record").inner_text()
    assert ("检查检验结果" if zh else "Measurement or lab result") in page.locator("tr.record").inner_text()
    # The first page of the basic health record: the hospital's diagnosis with its source; an entry of
    # one's own added, a blood type given, the entry removed.
    page.locator("a[href$='/me/records/summary']").first.click()
    assert page.locator("h1").inner_text() == ("我的健康档案首页" if zh else "My basic health record")
    chronic = page.locator("#section-chronic_conditions li.summary-item")
    assert chronic.count() == 1 and "Essential hypertension" in chronic.inner_text()
    assert "First People's Hospital" in chronic.inner_text()
    assert page.locator("#section-allergies h2").inner_text() == ("过敏史" if zh else "Allergies")
    page.select_option("form.own-entry select[name=kind]", "allergy")
    page.fill("form.own-entry input[name=text]", "青霉素 penicillin")
    page.locator("form.own-entry button").click()
    own = page.locator("#section-allergies li.own")
    assert own.count() == 1 and ("本人填写" if zh else "Added by you") in own.inner_text()
    assert page.locator("a.summary-pdf").get_attribute("href").endswith("/api/v1/me/records/summary.pdf")
    page.select_option("form.blood-type select[name=abo]", "AB")
    page.select_option("form.blood-type select[name=rh]", "negative")
    page.locator("form.blood-type button").click()
    assert "AB Rh-" in page.locator("#section-blood_type").inner_text()
    page.locator("form.own-entry button").click()  # nothing typed: the browser asks first
    assert page.locator("#section-allergies li.own").count() == 1
    page.screenshot(path=str(ARTIFACTS / f"records-summary-{lang}.png"), full_page=True)
    page.locator("#section-allergies li.own button").click()
    assert page.locator("#section-allergies li.own").count() == 0

    page.goto(f"{live_server}/me/records/consents")
    page.fill("input[name=institution_id]", inst)
    page.check("input[value=all]")
    page.fill("input[name=days]", "7")
    page.locator("button.button-primary").click()
    assert page.locator("tr.consent").count() == 1
    page.screenshot(path=str(ARTIFACTS / f"records-consents-{lang}.png"), full_page=True)

    staff = chromium.new_context(extra_http_headers={"Accept-Language": lang})
    staff.add_cookies([{"name": "ehc_staff", "value": doctor_token, "domain": host, "path": "/"}])
    doctor = staff.new_page()
    doctor.goto(f"{live_server}/staff/records/{ehc_id}")
    assert doctor.locator("tr.record").count() == 2
    assert ("不属于任何科室" if zh else "in no department") in doctor.locator("p.reader-department").inner_text()
    page.locator("tr.consent form button").click()  # the resident revokes: the doctor sees only his own hospital's
    doctor.reload()
    assert doctor.locator("tr.record").count() == 2  # published by his own hospital, still his to read

    # The guardian: from the family list to the child's records, their first page and their grants (one
    # for a department of the hospital); back to their own.
    page.goto(f"{live_server}/me")
    page.locator("a.member-records").first.click()
    assert page.locator("p.records-for-member").count() == 1
    assert page.locator("tr.record").count() == 1 and "Asthma" in page.locator("tr.record").inner_text()
    page.locator("a[href*='/me/records/summary?member=']").first.click()
    assert "Asthma" in page.locator("#section-chronic_conditions").inner_text()
    assert page.locator("p.records-for-member").count() == 1
    page.goto(f"{live_server}/me/records?member={child}")
    page.locator("a[href*='/me/records/consents?member=']").first.click()
    assert page.locator("tr.consent").count() == 0
    page.fill("input[name=institution_id]", inst)
    page.fill("input[name=department]", "0400")  # not one of the hospital's departments: said at the field
    page.check("input[value=conditions]")
    page.fill("input[name=days]", "7")
    page.locator("button.button-primary").click()
    assert page.locator(".field-invalid input[name=department]").count() == 1
    page.fill("input[name=department]", "0300")
    page.check("input[value=conditions]")
    page.locator("button.button-primary").click()
    assert page.locator("tr.consent").count() == 1 and "0300" in page.locator("tr.consent").inner_text()
    assert "member=" in page.url
    page.screenshot(path=str(ARTIFACTS / f"records-guardian-consents-{lang}.png"), full_page=True)
    page.locator("p.records-for-member a").click()
    assert page.locator("p.records-for-member").count() == 0 and page.locator("tr.record").count() == 2
    assert page.goto(f"{live_server}/me/records?member={'F' * 64}").status == 404
