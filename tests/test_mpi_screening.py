"""A new registration is screened against the master index: likely duplicates wait for review."""

from __future__ import annotations

from datetime import date

from residents import resident_id
from sqlalchemy import select

from ehc.audit.models import AuditEvent
from ehc.cards.models import Card
from ehc.mpi.models import MatchReview

BORN = date(1961, 4, 9)


def application(document_type: str, number: str, name: str = "林秀英", **extra) -> dict:
    return {"name": name, "document": {"type": document_type, "number": number}, "sex": "2",
            "birth_date": BORN.isoformat(), "phone": "13812345678", "address": "四川省成都市武侯区科华北路12号",
            "region_code": "510107", **extra}


def person_of(platform, ehc_id: str) -> str:
    with platform.db.session() as session:
        return session.get(Card, ehc_id).person_id


def reviews(platform) -> list[MatchReview]:
    with platform.db.session() as session:
        return list(session.scalars(select(MatchReview).where(MatchReview.source == "registration")
                                    .order_by(MatchReview.id)))


def test_the_same_person_under_another_document_is_queued_person_against_person(client, platform, clerk):
    by_passport = client.post("/api/v1/cards", json=application("03", "E12345678"), headers=clerk)
    assert by_passport.status_code == 201, by_passport.text
    assert reviews(platform) == []  # the first registration has no one to duplicate

    by_id_card = client.post("/api/v1/cards", json=application("01", resident_id("510107", BORN, 52, False)),
                             headers=clerk)
    assert by_id_card.status_code == 201, by_id_card.text
    [queued] = reviews(platform)
    assert queued.left_person_id == person_of(platform, by_id_card.json()["ehc_id"])
    assert queued.right_person_id == person_of(platform, by_passport.json()["ehc_id"])
    assert queued.grade in ("certain", "probable") and queued.status == "open" and queued.record_sealed is None
    with platform.db.session() as session:  # comparing was an access to the earlier person's data
        events = session.scalars(select(AuditEvent).where(AuditEvent.person_id == queued.right_person_id,
                                                          AuditEvent.purpose == "mpi.match")).all()
    assert len(events) == 1


def test_relatives_sharing_phone_and_address_are_not_queued(client, platform, clerk):
    mother = application("01", resident_id("510107", BORN, 52, False))
    daughter = application("01", resident_id("510107", date(1988, 2, 3), 64, False), name="林小雨",
                           birth_date="1988-02-03")
    for applicant in (mother, daughter):
        assert client.post("/api/v1/cards", json=applicant, headers=clerk).status_code == 201
    assert reviews(platform) == []


def test_applying_again_with_the_same_document_queues_nothing(client, platform, clerk):
    applicant = application("01", resident_id("510107", BORN, 52, False))
    first = client.post("/api/v1/cards", json=applicant, headers=clerk)
    again = client.post("/api/v1/cards", json=applicant, headers=clerk)
    assert again.json()["ehc_id"] == first.json()["ehc_id"]
    assert reviews(platform) == []
