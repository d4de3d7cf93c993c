"""No two cards share the first 80 bits of their id (docs/qr-format.md §5.2): a QR code carries only
that prefix, so the platform refuses a fresh id whose prefix is taken, on every path that creates
cards (registration, family, newborn, temporary, bulk import). Collisions are forced by making the
id generator return a clashing id first; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date

import factories
import pytest
from residents import resident_id
from sqlalchemy import func, select

from ehc.cards import importer
from ehc.cards import service as cards
from ehc.cards.models import Card
from ehc.kit import ids

REAL = ids.new_card_id


def person(sequence: int, *, born: date = date(1980, 4, 5), male: bool = True, **extra) -> dict:
    return factories.person("赵小川", born, sequence, male, **extra)


class ScriptedIds:
    """Hands out the scripted ids first, then real random ones; counts the draws."""

    def __init__(self, scripted: list[str]) -> None:
        self.queue: Iterator[str] = iter(scripted)
        self.drawn: list[str] = []

    def __call__(self) -> str:
        value = next(self.queue, None) or REAL()
        self.drawn.append(value)
        return value


def clash_with(ehc_id: str) -> str:
    """Another id with the same 80-bit prefix (the last 44 hex digits differ)."""
    tail = "F" * 44 if not ehc_id.endswith("F" * 44) else "0" * 44
    clash = ehc_id[:20] + tail
    assert clash != ehc_id and clash[:20] == ehc_id[:20]
    return clash


def prefixes_unique(platform) -> tuple[int, int]:
    with platform.db.session() as session:
        total = session.scalar(select(func.count()).select_from(Card))
        distinct = session.scalar(select(func.count(func.distinct(func.substr(Card.ehc_id, 1, 20)))))
    return total, distinct


def test_prefix_probe_is_a_range_on_the_primary_key(platform, client, clerk) -> None:
    existing = client.post("/api/v1/cards", json=person(11), headers=clerk).json()["ehc_id"]
    with platform.db.session() as session:
        assert cards.card_id_prefix_taken(session, existing)
        assert cards.card_id_prefix_taken(session, clash_with(existing))
        neighbour = existing[:19] + ("0" if existing[19] != "0" else "1") + existing[20:]  # 79 bits shared
        assert not cards.card_id_prefix_taken(session, neighbour)


CREATIONS = ["register", "family", "newborn", "temporary"]


def _create(client, clerk, how: str, guardian: str) -> str:
    if how == "register":
        answer = client.post("/api/v1/cards", json=person(12), headers=clerk)
    elif how == "family":
        member = person(13, born=date(2012, 2, 2), male=False)
        answer = client.post(f"/api/v1/cards/{guardian}/family", json={**member, "relation": "child"}, headers=clerk)
    elif how == "newborn":
        answer = client.post(f"/api/v1/cards/{guardian}/newborns", json={"sex": "2", "birth_date": "2024-05-06"},
                             headers=clerk)
    else:
        answer = client.post("/api/v1/cards/temporary", json={"note": "found at the station"}, headers=clerk)
    assert answer.status_code == 201, answer.text
    return answer.json()["ehc_id"]


@pytest.mark.parametrize("how", CREATIONS)
def test_every_creation_path_redraws_an_id_whose_prefix_is_taken(platform, client, clerk, monkeypatch, how) -> None:
    guardian = client.post("/api/v1/cards", json=person(11, phone="13900001111"), headers=clerk).json()["ehc_id"]
    script = ScriptedIds([clash_with(guardian)])
    monkeypatch.setattr(ids, "new_card_id", script)

    made = _create(client, clerk, how, guardian)

    assert script.drawn[0] == clash_with(guardian) and len(script.drawn) == 2
    assert made == script.drawn[1] and made[:20] != guardian[:20]
    assert prefixes_unique(platform) == (2, 2)


def test_a_broken_generator_is_refused_not_looped_on(platform, client, clerk, monkeypatch) -> None:
    existing = client.post("/api/v1/cards", json=person(11), headers=clerk).json()["ehc_id"]
    monkeypatch.setattr(ids, "new_card_id", lambda: clash_with(existing))
    answer = client.post("/api/v1/cards", json=person(14), headers=clerk)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "card_id_unavailable"
    assert prefixes_unique(platform) == (1, 1)  # nothing half-made: the registration rolled back


def test_bulk_import_redraws_clashes_with_existing_cards_and_within_a_batch(platform, client, clerk, monkeypatch,
                                                                             tmp_path) -> None:
    existing = client.post("/api/v1/cards", json=person(11), headers=clerk).json()["ehc_id"]
    twin = REAL()
    # Row 1 clashes with the card already there; rows 2 and 3 clash with each other.
    script = ScriptedIds([clash_with(existing), twin, clash_with(twin)])
    monkeypatch.setattr(ids, "new_card_id", script)
    path = tmp_path / "registry.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "document_number", "phone"])
        for i in range(4):
            writer.writerow([f"钱{'一二三四'[i]}", resident_id(born=date(1990, 1, 1 + i), sequence=20 + i), ""])

    result = importer.import_csv(platform, path, operator="prefix-test", batch_size=10, workers=0)

    assert result.created == 4 and result.rejected == 0
    assert prefixes_unique(platform) == (5, 5)
    with platform.db.session() as session:
        stored = set(session.scalars(select(Card.ehc_id)))
    assert clash_with(existing) not in stored
    assert len({twin, clash_with(twin)} & stored) <= 1  # at least one of the twins was redrawn
    assert len(script.drawn) >= 4 + 2  # four rows, and a fresh draw for each clash


def test_the_database_itself_refuses_a_second_card_with_a_taken_prefix(client, platform, clerk):
    """The race the look-up cannot see (two creations drawing the same prefix at once) ends at the
    unique index on the prefix (migration 0009), not in two cards."""
    from sqlalchemy.exc import IntegrityError

    from ehc.mpi.models import Person

    taken = client.post("/api/v1/cards", json=person(41), headers=clerk).json()["ehc_id"]
    with pytest.raises(IntegrityError, match="uq_cards_ehc_id_prefix"):  # noqa: SIM117 (the session must end inside)
        with platform.db.session() as session:
            session.add(Person(id=ids.new_person_id()))
            session.flush()
            session.add(Card(ehc_id=taken[:20] + REAL()[20:], person_id=session.scalars(
                select(Person.id).where(Person.id.not_in(select(Card.person_id)))).first(),
                status="normal", channel="0100"))
            session.flush()


def test_the_database_itself_refuses_a_status_that_is_not_a_card_status(client, platform, clerk):
    """The status column holds one of ``CardStatus`` (check constraint, migration 0011): a card
    written with any other status, e.g. "active", is refused, on both databases."""
    from sqlalchemy.exc import IntegrityError

    holder = client.post("/api/v1/cards", json=person(42), headers=clerk).json()["ehc_id"]
    with pytest.raises(IntegrityError, match="ck_cards_status"):  # noqa: SIM117 (the session must end inside)
        with platform.db.session() as session:
            session.get(Card, holder).status = "active"
            session.flush()
