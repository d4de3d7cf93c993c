"""Family members, newborns, temporary emergency cards and their merge, and modifying details."""

from __future__ import annotations

from datetime import date

from factories import person
from residents import resident_id
from test_cards_api import application


def _adult(client, sequence: int = 21) -> str:  # noqa: ANN001
    answer = client.post("/api/v1/cards", json=application(resident_id(born=date(1985, 6, 1), sequence=sequence)))
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["ehc_id"]


def _child(sequence: int, relation: str = "child", born: date = date(2015, 9, 1), male: bool = False) -> dict:
    return person("王小红", born, sequence, male, relation=relation)


def test_guardian_binds_family_up_to_the_limit(client, clerk):
    guardian = _adult(client)
    for seq in range(5):
        added = client.post(f"/api/v1/cards/{guardian}/family", json=_child(seq), headers=clerk)
        assert added.status_code == 201, added.text
    sixth = client.post(f"/api/v1/cards/{guardian}/family", json=_child(7), headers=clerk)
    assert sixth.status_code == 409 and sixth.json()["code"] == "family_limit_reached"
    # Binding someone already bound is not a new binding and not an error.
    again = client.post(f"/api/v1/cards/{guardian}/family", json=_child(0), headers=clerk)
    assert again.status_code == 200 and again.json()["created"] is False
    family = client.get(f"/api/v1/cards/{guardian}/family", headers=clerk).json()
    assert len(family) == 5 and {m["relation"] for m in family} == {"child"}
    assert len({m["card"]["ehc_id"] for m in family}) == 5


def test_family_limit_is_configurable(client, clerk, platform):
    from dataclasses import replace

    platform.settings = replace(platform.settings, family_limit=1)
    guardian = _adult(client)
    assert client.post(f"/api/v1/cards/{guardian}/family", json=_child(1), headers=clerk).status_code == 201
    second = client.post(f"/api/v1/cards/{guardian}/family", json=_child(2), headers=clerk)
    assert second.json()["code"] == "family_limit_reached"


def test_guardian_card_must_be_active(client, clerk):
    guardian = _adult(client)
    client.post(f"/api/v1/cards/{guardian}/report-lost", json={"reason": "lost phone"}, headers=clerk)
    refused = client.post(f"/api/v1/cards/{guardian}/family", json=_child(1), headers=clerk)
    assert refused.status_code == 409 and refused.json()["code"] == "guardian_card_not_active"
    bad_relation = client.post(f"/api/v1/cards/{guardian}/family", json=_child(1, relation="friend"), headers=clerk)
    assert bad_relation.status_code == 422 and bad_relation.json()["code"] == "relation_invalid"


def test_newborns_with_and_without_birth_certificate_and_twins(client, clerk):
    mother = client.post("/api/v1/cards", json=application(
        resident_id(born=date(1992, 2, 2), sequence=40, male=False), name="李芳", sex="2",
        birth_date="1992-02-02")).json()["ehc_id"]
    born = date.today().isoformat()
    with_certificate = client.post(f"/api/v1/cards/{mother}/newborns", headers=clerk, json={
        "sex": "1", "birth_date": born, "birth_certificate": "o510123456"})
    assert with_certificate.status_code == 201, with_certificate.text
    assert with_certificate.json()["holder"]["document_type"] == "08"

    twin1 = client.post(f"/api/v1/cards/{mother}/newborns", headers=clerk, json={
        "sex": "2", "birth_date": born, "birth_order": 1, "multiple_birth": True})
    twin2 = client.post(f"/api/v1/cards/{mother}/newborns", headers=clerk, json={
        "sex": "2", "birth_date": born, "birth_order": 2, "multiple_birth": True})
    assert twin1.status_code == twin2.status_code == 201
    assert twin1.json()["ehc_id"] != twin2.json()["ehc_id"]
    assert twin1.json()["verifier"] == "parent-card" and twin1.json()["holder"]["region_code"] == "510104"
    # The same twin registered again (a retry from the maternity ward) finds the same card.
    twin1_again = client.post(f"/api/v1/cards/{mother}/newborns", headers=clerk, json={
        "sex": "2", "birth_date": born, "birth_order": 1, "multiple_birth": True})
    assert twin1_again.status_code == 200 and twin1_again.json()["ehc_id"] == twin1.json()["ehc_id"]
    order_without_flag = client.post(f"/api/v1/cards/{mother}/newborns", headers=clerk, json={
        "sex": "2", "birth_date": born, "birth_order": 2})
    assert order_without_flag.status_code == 422 and order_without_flag.json()["code"] == "birth_order_invalid"

    family = client.get(f"/api/v1/cards/{mother}/family", headers=clerk).json()
    assert len(family) == 3 and all(m["relation"] == "child" for m in family)


def test_temporary_card_merges_into_the_identified_person(client, clerk, platform):
    temp = client.post("/api/v1/cards/temporary", headers=clerk, json={
        "sex": "1", "approximate_birth_year": 1985, "note": "brought in by ambulance, unconscious, tattoo on left arm"})
    assert temp.status_code == 201 and temp.json()["temporary"] is True and temp.json()["holder"]["name"] is None
    temp_id = temp.json()["ehc_id"]
    # The emergency doctor binds a relative who came along, before the patient is identified.
    child = client.post(f"/api/v1/cards/{temp_id}/family", json=_child(3), headers=clerk)
    assert child.status_code == 201

    real = _adult(client)
    not_temp = client.post(f"/api/v1/cards/{real}/merge", json={"into": temp_id}, headers=clerk)
    assert not_temp.status_code == 409 and not_temp.json()["code"] == "card_not_temporary"
    merged = client.post(f"/api/v1/cards/{temp_id}/merge", json={"into": real, "reason": "identified by wife"},
                         headers=clerk)
    assert merged.status_code == 200 and merged.json()["ehc_id"] == real

    old = client.get(f"/api/v1/cards/{temp_id}", headers=clerk).json()
    assert old["status"] == "cancelled"
    events = client.get(f"/api/v1/cards/{temp_id}/events", headers=clerk).json()
    assert events[-1]["action"] == "cancel" and "identified by wife" in events[-1]["reason"]
    # Everything linked to the temporary person moved: the family binding is now the real person's.
    family = client.get(f"/api/v1/cards/{real}/family", headers=clerk).json()
    assert [m["card"]["ehc_id"] for m in family] == [child.json()["ehc_id"]]
    twice = client.post(f"/api/v1/cards/{temp_id}/merge", json={"into": real}, headers=clerk)
    assert twice.status_code == 409


def test_modify_reverifies_identity_fields(client, clerk):
    ehc_id = _adult(client)
    phone_only = client.patch(f"/api/v1/cards/{ehc_id}", json={"phone": "+86 139 0000 1111"}, headers=clerk)
    assert phone_only.status_code == 200 and phone_only.json()["holder"]["phone"] == "139****1111"
    wrong_birth = client.patch(f"/api/v1/cards/{ehc_id}", json={"birth_date": "1985-06-09"}, headers=clerk)
    assert wrong_birth.status_code == 422 and wrong_birth.json()["code"] == "real_name_verification_failed"
    renamed = client.patch(f"/api/v1/cards/{ehc_id}", json={"name": "王晓明", "reason": "name changed at police station"},
                           headers=clerk)
    assert renamed.status_code == 200 and renamed.json()["holder"]["name"] == "王*明"
    assert renamed.json()["status"] == "normal"
    # The corrected name is now the one on file: registering with the old name is refused.
    old_name = client.post("/api/v1/cards", json=application(resident_id(born=date(1985, 6, 1), sequence=21)))
    assert old_name.status_code == 409
    events = client.get(f"/api/v1/cards/{ehc_id}/events", headers=clerk).json()
    assert [e["action"] for e in events] == ["register", "modify", "modify"]


def test_unknown_card_and_bad_ids_are_clear_errors(client, clerk):
    missing = client.get("/api/v1/cards/" + "A" * 64, headers=clerk)
    assert missing.status_code == 404 and missing.json()["code"] == "card_not_found"
    weird = client.post("/api/v1/cards/%20/recover", headers=clerk)
    assert weird.status_code in (404, 422) and weird.headers["content-type"].startswith("application/problem+json")
    route = client.get("/api/v1/nowhere")
    assert route.status_code == 404 and route.json()["code"] == "not_found"


def test_family_limit_holds_under_concurrent_additions(live_url, platform, institution):
    """Thirty window clerks binding different children to one guardian at once (three bound, limit
    five): exactly two more bindings, every other answer a clear 409, and no card left half-made."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from sqlalchemy import func, select

    from ehc.cards.models import Card, FamilyBinding
    from factories import make_staff

    with httpx.Client(base_url=live_url, timeout=60) as client:
        clerk = make_staff(platform, client, "window_clerk", institution)
        guardian = _adult(client)
        for seq in range(3):
            assert client.post(f"/api/v1/cards/{guardian}/family", json=_child(seq), headers=clerk).status_code == 201
        # Half the children hold a card already (binding them registers nothing, the tightest race).
        for seq in range(10, 40, 2):
            made = client.post("/api/v1/cards", json={k: v for k, v in _child(seq).items() if k != "relation"})
            assert made.status_code == 201, made.text
        with platform.db.session() as session:
            cards_before = session.scalar(select(func.count()).select_from(Card))

    def add(seq: int) -> httpx.Response:
        return httpx.post(f"{live_url}/api/v1/cards/{guardian}/family", json=_child(10 + seq), headers=clerk,
                          timeout=60)

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(add, range(30)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(409) == 28 and set(codes) <= {200, 201, 409}, [a.text for a in answers if a.status_code >= 500]
    assert all(a.json()["code"] == "family_limit_reached" for a in answers if a.status_code == 409)
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(FamilyBinding)) == 5
        # A refused child got no new card either: the registration and the binding are one transaction.
        assert session.scalar(select(func.count()).select_from(Card)) == cards_before + codes.count(201)


def test_concurrent_retries_of_one_family_binding_give_one_binding(live_url, platform, institution):
    """A clerk's page retried by an impatient double click and a flaky network: eight identical
    requests with one Idempotency-Key at once give one child card and one binding, every answer 201."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from sqlalchemy import func, select

    from ehc.cards.models import FamilyBinding
    from factories import make_staff

    with httpx.Client(base_url=live_url, timeout=60) as client:
        clerk = make_staff(platform, client, "window_clerk", institution)
        guardian = _adult(client)

    def add(_: int) -> httpx.Response:
        return httpx.post(f"{live_url}/api/v1/cards/{guardian}/family", json=_child(4),
                          headers={**clerk, "Idempotency-Key": "bind-twins-1"}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(add, range(8)))
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    assert len({a.json()["ehc_id"] for a in answers}) == 1
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(FamilyBinding)) == 1
