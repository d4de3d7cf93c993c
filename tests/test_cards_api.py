"""The card registry through its HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from residents import resident_id

PROBLEM = "application/problem+json"


def application(number: str | None = None, **over) -> dict:
    body = {
        "name": "王小明",
        "document": {"type": "01", "number": number or resident_id(born=date(1985, 6, 1), sequence=21)},
        "sex": "1",
        "birth_date": "1985-06-01",
        "phone": "13912345678",
        "address": "成都市武侯区人民南路四段1号",
    }
    body.update(over)
    return body


def test_apply_issues_one_card_and_returns_it_again(client):
    first = client.post("/api/v1/cards", json=application())
    assert first.status_code == 201, first.text
    card = first.json()
    assert len(card["ehc_id"]) == 64 and card["status"] == "normal" and card["status_code"] == "1"
    assert card["created"] is True and card["verifier"] == "local-document" and card["channel"] == "0500"
    assert card["holder"]["name"] == "王*明" and card["holder"]["document_number"].endswith(
        application()["document"]["number"][-4:]) and "*" in card["holder"]["document_number"]

    # Same document typed differently (lower-case x, spaces) from another channel: the same card.
    again = client.post("/api/v1/cards", json=application())
    assert again.status_code == 200 and again.json()["ehc_id"] == card["ehc_id"] and again.json()["created"] is False


def test_lower_case_x_and_spaces_find_the_same_person(client):
    number = next(resident_id(sequence=s) for s in range(100) if resident_id(sequence=s).endswith("X"))
    first = client.post("/api/v1/cards", json=application(number, birth_date="1990-03-07"))
    assert first.status_code == 201, first.text
    spaced = " ".join([number[:6], number[6:14], number[14:].lower()])
    second = client.post("/api/v1/cards", json=application(spaced, birth_date="1990-03-07"))
    assert second.json()["ehc_id"] == first.json()["ehc_id"]


def test_bad_input_is_a_problem_with_field_errors(client):
    bad = application(resident_id()[:-1] + "0" if not resident_id().endswith("0") else resident_id()[:-1] + "1",
                      phone="12345")
    answer = client.post("/api/v1/cards", json=bad)
    assert answer.status_code == 422 and answer.headers["content-type"].startswith(PROBLEM)
    body = answer.json()
    assert body["code"] == "application_invalid" and body["request_id"]
    fields = {e["field"]: e["code"] for e in body["errors"]}
    assert fields["document_number"] == "document_checksum_mismatch" and fields["phone"] == "phone_malformed"

    schema_error = client.post("/api/v1/cards", json={"name": "x"})
    assert schema_error.status_code == 422 and schema_error.json()["code"] == "validation_failed"
    assert {e["field"] for e in schema_error.json()["errors"]} == {"document"}

    not_json = client.post("/api/v1/cards", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.headers["content-type"].startswith(PROBLEM)


def test_stated_birth_date_must_match_the_id_card(client):
    answer = client.post("/api/v1/cards", json=application(birth_date="1985-06-02"))
    assert answer.status_code == 422 and answer.json()["code"] == "real_name_verification_failed"
    assert answer.json()["errors"][0]["code"] == "birth_date_mismatch"
    assert client.post("/api/v1/cards", json=application()).status_code == 201  # nothing half-written


def test_same_document_under_another_name_is_refused(client):
    assert client.post("/api/v1/cards", json=application()).status_code == 201
    answer = client.post("/api/v1/cards", json=application(name="王大明"))
    assert answer.status_code == 409 and answer.json()["code"] == "document_registered_other_name"
    assert "ehc_id" not in answer.text


def test_concurrent_registrations_of_one_document_give_one_card(client):
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: client.post("/api/v1/cards", json=application()), range(16)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers if a.status_code >= 300]
    assert len({a.json()["ehc_id"] for a in answers}) == 1
    assert sum(a.json()["created"] for a in answers) == 1


def test_idempotency_key_replays_and_refuses_reuse(client):
    headers = {"Idempotency-Key": "apply-7f3a"}
    first = client.post("/api/v1/cards", json=application(), headers=headers)
    replay = client.post("/api/v1/cards", json=application(), headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.json()["ehc_id"] == first.json()["ehc_id"]
    other = client.post("/api/v1/cards", json=application(resident_id(sequence=33)), headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"


def test_passport_goes_to_review_and_a_clerk_decides(client, clerk):
    passport = client.post("/api/v1/cards", json=application(
        None, document={"type": "03", "number": "E12345678"}, birth_date="1980-01-01"))
    assert passport.status_code == 201 and passport.json()["status"] == "pending_review"
    ehc_id = passport.json()["ehc_id"]
    assert passport.json()["status_code"] == "2"

    anonymous = client.post(f"/api/v1/cards/{ehc_id}/approve")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    unseen = client.post(f"/api/v1/cards/{ehc_id}/approve", headers=clerk)
    assert unseen.status_code == 422 and unseen.json()["code"] == "document_check_required"
    other = client.post(f"/api/v1/cards/{ehc_id}/approve", headers=clerk,
                        json={"document": {"type": "03", "number": "E87654321"}})
    assert other.status_code == 409 and other.json()["code"] == "review_document_mismatch"
    assert client.get(f"/api/v1/cards/{ehc_id}", headers=clerk).json()["status"] == "pending_review"
    shown = {"document": {"type": "03", "number": "e12345678"}, "reason": "passport checked"}
    approved = client.post(f"/api/v1/cards/{ehc_id}/approve", headers=clerk, json=shown)
    assert approved.status_code == 200 and approved.json()["status"] == "normal"
    assert approved.json()["verifier"] == "document-seen"
    again = client.post(f"/api/v1/cards/{ehc_id}/approve", headers=clerk, json=shown)
    assert again.status_code == 409 and again.json()["code"] == "card_transition_not_allowed"
    events = client.get(f"/api/v1/cards/{ehc_id}/events", headers=clerk).json()
    assert events[-1]["action"] == "approve" and "checked in person" in events[-1]["reason"]
    assert "E12345678" not in events[-1]["reason"]


def test_lifecycle_records_who_when_why(client, clerk, institution):
    ehc_id = client.post("/api/v1/cards", json=application()).json()["ehc_id"]
    no_reason = client.post(f"/api/v1/cards/{ehc_id}/report-lost", headers=clerk, json={})
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_required"
    lost = client.post(f"/api/v1/cards/{ehc_id}/report-lost", headers=clerk, json={"reason": "phone stolen"})
    assert lost.json()["status"] == "lost" and lost.json()["status_code"] == "6"
    assert client.post(f"/api/v1/cards/{ehc_id}/recover", headers=clerk).json()["status"] == "normal"
    reissued = client.post(f"/api/v1/cards/{ehc_id}/reissue", headers=clerk, json={"reason": "new phone"})
    assert reissued.json()["sequence"] == 2 and reissued.json()["status"] == "normal"
    cancelled = client.post(f"/api/v1/cards/{ehc_id}/cancel", headers=clerk, json={"reason": "death registered"})
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["status_code"] == "0"
    refused = client.post(f"/api/v1/cards/{ehc_id}/recover", headers=clerk)
    assert refused.status_code == 409 and refused.json()["code"] == "card_transition_not_allowed"

    events = client.get(f"/api/v1/cards/{ehc_id}/events", headers=clerk).json()
    assert [e["action"] for e in events] == ["register", "report_lost", "recover", "reissue", "cancel"]
    assert events[0]["actor_kind"] == "anonymous" and events[0]["channel"] == "0500"
    assert all(e["institution_id"] == institution and e["channel"] == "0100" for e in events[1:])
    assert events[4]["reason"] == "death registered" and events[4]["operator"].startswith("window_clerk")


def test_lookup_by_document_needs_staff(client, clerk):
    number = application()["document"]["number"]
    ehc_id = client.post("/api/v1/cards", json=application()).json()["ehc_id"]
    body = {"document": {"type": "01", "number": number.lower()}}
    assert client.post("/api/v1/cards/lookup", json=body).status_code == 401
    found = client.post("/api/v1/cards/lookup", json=body, headers=clerk)
    assert found.status_code == 200 and found.json()["ehc_id"] == ehc_id
    missing = client.post("/api/v1/cards/lookup", json={"document": {"type": "01", "number": resident_id(sequence=55)}},
                          headers=clerk)
    assert missing.status_code == 404 and missing.json()["code"] == "card_not_found"


def test_concurrent_retries_with_one_idempotency_key_get_the_first_answer(live_url, platform):
    """Many clients sending the same request with the same key at once (a retry storm): one card,
    every client answered 201 with it; the same key with other bodies: 409, never a 500."""
    import httpx

    from ehc.cards.models import Card
    from sqlalchemy import func, select

    def post(body: dict, key: str) -> httpx.Response:
        return httpx.post(f"{live_url}/api/v1/cards", json=body, headers={"Idempotency-Key": key}, timeout=60)

    same = application(resident_id(born=date(1985, 6, 1), sequence=41))
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: post(same, "storm-1"), range(12)))
    assert [a.status_code for a in answers] == [201] * 12, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["ehc_id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 11

    bodies = [application(resident_id(born=date(1985, 6, 1), sequence=50 + i)) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda body: post(body, "storm-2"), bodies))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409, 409, 409, 409], [a.text for a in answers]
    assert all(a.json()["code"] == "idempotency_key_reused" for a in answers if a.status_code == 409)
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Card)) == 2  # one card per key
