"""Merging and unmerging people of the master index: every move is recorded and undone exactly;
unsafe undos are refused; the temporary-card merge keeps working. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
import factories
from factories import make_staff
from sqlalchemy import select

from ehc.cards.models import Card, CardEvent, FamilyBinding
from ehc.mpi.models import Merge, MergeMove, Person

URL = "/api/v1/mpi/merges"


def person(name: str, sequence: int, born: date = date(1980, 5, 6), **extra) -> dict:
    return factories.person(name, born, sequence, **extra)


def problem(answer, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code, answer.text


@pytest.fixture
def operator(platform, client) -> dict[str, str]:
    return make_staff(platform, client, "regional_operator", None, region="510100")


def issue(client, clerk, body: dict) -> str:
    made = client.post("/api/v1/cards", json=body, headers=clerk)
    assert made.status_code == 201, made.text
    return made.json()["ehc_id"]


def bind(client, clerk, ehc_id: str, system: str, value: str) -> None:
    answer = client.post("/api/v1/mpi/identifiers", json={"system": system, "value": value, "ehc_id": ehc_id},
                         headers=clerk)
    assert answer.status_code == 201, answer.text


def holder_of(client, headers, system: str, value: str) -> str | None:
    answer = client.get("/api/v1/mpi/persons", params={"system": system, "value": value}, headers=headers)
    return answer.json()["ehc_id"] if answer.status_code == 200 else None


def lookup(client, clerk, number: str) -> dict:
    answer = client.post("/api/v1/cards/lookup", json={"document": {"type": "01", "number": number}}, headers=clerk)
    assert answer.status_code == 200, answer.text
    return answer.json()


def card_row(platform, ehc_id: str) -> Card:
    with platform.db.session() as session:
        card = session.get(Card, ehc_id)
        session.expunge(card)
        return card


def test_an_operator_merges_two_people_and_undoes_it_exactly(client, platform, clerk, operator):
    first = issue(client, clerk, person("张建国", 11))
    second = issue(client, clerk, person("张建囯", 12))  # the same man, registered twice with a typo'd document
    child = client.post(f"/api/v1/cards/{first}/family", headers=clerk, json={
        **person("张小明", 13, date(2015, 1, 2)), "relation": "child"})
    assert child.status_code == 201, child.text
    bind(client, clerk, first, "mrn", "MR-1")
    bind(client, clerk, second, "ssc", "A12345678")

    problem(client.post(URL, json={"source": first, "target": second, "reason": " "}, headers=operator),
            422, "reason_required")
    merged = client.post(URL, json={"source": first, "target": second, "reason": "same person"}, headers=operator)
    assert merged.status_code == 201, merged.text
    merge = merged.json()
    kinds = sorted(m["kind"] for m in merge["moves"])
    assert kinds == ["card", "family_binding", "identifier", "identifier"]  # MR-1 and the first document
    assert {m["ref"] for m in merge["moves"] if m["kind"] == "card"} == {first}
    # Everything now leads to the survivor.
    assert holder_of(client, clerk, "mrn", "MR-1") == second
    assert holder_of(client, clerk, "doc:01", person("", 11)["document"]["number"]) == second
    assert card_row(platform, first).status == "cancelled"
    assert lookup(client, clerk, person("", 11)["document"]["number"])["ehc_id"] == second
    family = client.get(f"/api/v1/cards/{second}/family", headers=clerk).json()
    assert [m["card"]["ehc_id"] for m in family] == [child.json()["ehc_id"]]
    problem(client.post(URL, json={"source": first, "target": second, "reason": "again"}, headers=operator),
            409, "merge_same_person")

    undone = client.post(f"{URL}/{merge['id']}/undo", json={"reason": "two brothers after all"}, headers=operator)
    assert undone.status_code == 200, undone.text
    assert undone.json()["undone_at"] and undone.json()["undo_reason"] == "two brothers after all"
    assert holder_of(client, clerk, "mrn", "MR-1") == first
    assert holder_of(client, clerk, "ssc", "A12345678") == second
    restored = card_row(platform, first)
    assert lookup(client, clerk, person("", 11)["document"]["number"])["ehc_id"] == first
    assert restored.status == "normal" and restored.sequence == 2  # a new issue: pre-merge codes stay revoked
    family = client.get(f"/api/v1/cards/{first}/family", headers=clerk).json()
    assert [m["card"]["ehc_id"] for m in family] == [child.json()["ehc_id"]]
    assert client.get(f"/api/v1/cards/{second}/family", headers=clerk).json() == []
    with platform.db.session() as session:
        events = [e.action for e in session.scalars(select(CardEvent).where(CardEvent.ehc_id == first)
                                                    .order_by(CardEvent.id))]
        assert events == ["register", "cancel", "unmerge"]
        assert all(p.status == "active" and p.merged_into is None for p in session.scalars(select(Person)))
    problem(client.post(f"{URL}/{merge['id']}/undo", json={"reason": "twice"}, headers=operator),
            409, "merge_already_undone")
    assert client.get(f"{URL}/{merge['id']}", headers=operator).json()["undone_by"]


def test_an_undo_that_later_merges_make_unsafe_is_refused(client, platform, clerk, operator):
    a, b, c = (issue(client, clerk, person(name, seq)) for name, seq in (("王一", 21), ("王二", 22), ("王三", 23)))
    bind(client, clerk, a, "mrn", "A-1")
    first = client.post(URL, json={"source": a, "target": b, "reason": "dup"}, headers=operator).json()
    second = client.post(URL, json={"source": b, "target": c, "reason": "dup"}, headers=operator).json()
    assert holder_of(client, clerk, "mrn", "A-1") == c
    problem(client.post(f"{URL}/{first['id']}/undo", json={"reason": "no"}, headers=operator),
            409, "unmerge_target_merged")
    # Undone in reverse order, each comes apart.
    for merge, holder in ((second, b), (first, a)):
        answer = client.post(f"{URL}/{merge['id']}/undo", json={"reason": "wrong"}, headers=operator)
        assert answer.status_code == 200, answer.text
        assert holder_of(client, clerk, "mrn", "A-1") == holder


def test_merges_stay_within_the_operators_region(client, platform, clerk, operator):
    a = issue(client, clerk, person("赵一", 31))
    b = issue(client, clerk, person("赵二", 32))
    elsewhere = make_staff(platform, client, "regional_operator", None, region="440300")
    problem(client.post(URL, json={"source": a, "target": b, "reason": "dup"}, headers=elsewhere),
            404, "person_not_found")
    merge = client.post(URL, json={"source": a, "target": b, "reason": "dup"}, headers=operator).json()
    problem(client.get(f"{URL}/{merge['id']}", headers=elsewhere), 404, "merge_not_found")
    problem(client.post(f"{URL}/{merge['id']}/undo", json={"reason": "x"}, headers=elsewhere), 404, "merge_not_found")
    problem(client.get(f"{URL}/999999", headers=operator), 404, "merge_not_found")


def test_the_temporary_card_merge_is_recorded_and_reversible(client, platform, clerk):
    real = issue(client, clerk, person("孙大圣", 41))
    temp = client.post("/api/v1/cards/temporary", json={"note": "found at the gate"}, headers=clerk).json()["ehc_id"]
    relative = client.post(f"/api/v1/cards/{temp}/family", headers=clerk, json={
        **person("孙小圣", 42, date(2010, 3, 3)), "relation": "child"}).json()["ehc_id"]
    bind(client, clerk, temp, "mrn", "EMERG-9")
    merged = client.post(f"/api/v1/cards/{temp}/merge", json={"into": real, "reason": "identified"}, headers=clerk)
    assert merged.status_code == 200, merged.text
    with platform.db.session() as session:
        merge = session.scalar(select(Merge))
        moves = {(m.kind, m.ref.split(":")[-1] if m.kind == "family_binding" else "") for m in
                 session.scalars(select(MergeMove).where(MergeMove.merge_id == merge.id))}
        merge_id = merge.id
    assert moves == {("identifier", ""), ("card", ""), ("family_binding", "guardian")}
    assert holder_of(client, clerk, "mrn", "EMERG-9") == real
    admin = make_staff(platform, client, "platform_admin", None)
    assert client.post(f"{URL}/{merge_id}/undo", json={"reason": "wrong patient"}, headers=admin).status_code == 200
    assert card_row(platform, temp).status == "normal"
    assert holder_of(client, clerk, "mrn", "EMERG-9") == temp
    with platform.db.session() as session:
        guardians = {b.guardian_person_id for b in session.scalars(select(FamilyBinding))}
        assert guardians == {session.get(Card, temp).person_id}
    assert relative


def test_a_binding_both_people_share_stays_with_the_tombstone(client, platform, clerk, operator):
    """The same child bound to both records of one parent: the merge must not duplicate the binding."""
    a = issue(client, clerk, person("钱一", 51))
    b = issue(client, clerk, person("钱一", 52))
    kid = {**person("钱小", 53, date(2016, 6, 6)), "relation": "child"}
    for parent in (a, b):
        assert client.post(f"/api/v1/cards/{parent}/family", json=kid, headers=clerk).status_code in (200, 201)
    merge = client.post(URL, json={"source": a, "target": b, "reason": "dup"}, headers=operator)
    assert merge.status_code == 201, merge.text
    assert "family_binding" not in {m["kind"] for m in merge.json()["moves"]}
    assert len(client.get(f"/api/v1/cards/{b}/family", headers=clerk).json()) == 1
    assert client.post(f"{URL}/{merge.json()['id']}/undo", json={"reason": "no"}, headers=operator).status_code == 200
    assert len(client.get(f"/api/v1/cards/{a}/family", headers=clerk).json()) == 1


def test_the_window_lookup_follows_a_holder_merged_with_the_document_still_theirs(client, platform, clerk):
    """A document whose holder was merged into another person without it moving (a state the merges
    above do not leave, but the index allows: ``find_by_identifier`` follows ``merged_into``): the
    window's look-up answers the survivor's card and details, with one audit event for the survivor."""
    from ehc.audit.models import AuditEvent

    tombstone = issue(client, clerk, person("孙一", 61))
    survivor = issue(client, clerk, person("孙二", 62))
    source_id, survivor_id = card_row(platform, tombstone).person_id, card_row(platform, survivor).person_id
    with platform.db.session() as session:
        session.get(Person, source_id).merged_into = survivor_id
        session.commit()
    found = lookup(client, clerk, person("", 61)["document"]["number"])
    assert found["ehc_id"] == survivor
    assert found == lookup(client, clerk, person("", 62)["document"]["number"])
    with platform.db.session() as session:
        reads = session.scalars(select(AuditEvent).where(AuditEvent.purpose == "card.lookup")).all()
        assert [e.person_id for e in reads] == [survivor_id] * 2
