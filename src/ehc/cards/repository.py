"""Cards' queries: the card registry's tables read and written, and nothing decided here (the rules
are in ``service.py``). A card, one step of its life, a family binding; the bulk importer's batch
writes of the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Select, bindparam, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..kit.context import Actor
from .models import Card, CardEvent, CardStatus, FamilyBinding

# A QR code carries only the first 80 bits of the card id (docs/qr-format.md §5.2).
CARD_ID_PREFIX = 20  # hex digits

Bind = Session | Connection


# -- cards ----------------------------------------------------------------------------------------

def get(session: Session, ehc_id: str) -> Card | None:
    return session.get(Card, ehc_id)


def of_person(session: Session, person_id: str) -> Card | None:
    return session.scalar(select(Card).where(Card.person_id == person_id))


def with_id_prefix(prefix: str) -> Select:
    """The query for the card whose id starts with ``prefix`` (upper-case hex): a range scan of the
    primary key, as a QR code's card reference is resolved (docs/qr-format.md §5.2)."""
    return select(Card).where(Card.ehc_id >= prefix, Card.ehc_id < prefix + "G").limit(1)


def with_id_prefix_param() -> Select:
    """:func:`with_id_prefix` with the prefix as parameters (:func:`id_prefix_params`), to build once."""
    return select(Card).where(Card.ehc_id >= bindparam("prefix"), Card.ehc_id < bindparam("prefix_end")).limit(1)


def id_prefix_params(prefix: str) -> dict[str, str]:
    return {"prefix": prefix, "prefix_end": prefix + "G"}


def by_id_prefix(session: Session, prefix: str) -> Card | None:
    return session.scalar(with_id_prefix(prefix))


def id_prefix_taken(bind: Bind, prefix: str) -> bool:
    return bind.scalar(with_id_prefix(prefix).with_only_columns(Card.ehc_id)) is not None


def any_card(session: Session) -> bool:
    return session.scalar(select(Card.ehc_id).limit(1)) is not None


def add(session: Session, card: Card) -> Card:
    session.add(card)
    session.flush()
    return card


def uncancelled_of(session: Session, person_ids: Sequence[str]) -> list[Card]:
    """The cards of these people that are not cancelled and not temporary, oldest first."""
    if not person_ids:
        return []
    return list(session.scalars(
        select(Card)
        .where(Card.person_id.in_(list(person_ids)), Card.status != CardStatus.CANCELLED.value,
               Card.temporary.is_(False))
        .order_by(Card.issued_at, Card.ehc_id)
    ))


def card_ids_by_person(session: Session) -> dict[str, str]:
    """Every card's id by its holder's person id (batch linkage's frame)."""
    return dict(session.execute(select(Card.person_id, Card.ehc_id)).all())


# -- the card's history ---------------------------------------------------------------------------

def add_event(session: Session, event: CardEvent) -> None:
    session.add(event)
    session.flush()


def events_of(session: Session, ehc_id: str) -> list[CardEvent]:
    return list(session.scalars(select(CardEvent).where(CardEvent.ehc_id == ehc_id).order_by(CardEvent.id)))


def last_event(session: Session, ehc_id: str, action: str) -> CardEvent | None:
    return session.scalar(select(CardEvent).where(CardEvent.ehc_id == ehc_id, CardEvent.action == action)
                          .order_by(CardEvent.id.desc()).limit(1))


# -- family bindings ------------------------------------------------------------------------------

def binding(session: Session, guardian_id: str, member_id: str) -> FamilyBinding | None:
    return session.scalar(select(FamilyBinding).where(
        FamilyBinding.guardian_person_id == guardian_id, FamilyBinding.member_person_id == member_id))


def binding_by_id(session: Session, binding_id: int) -> FamilyBinding | None:
    return session.get(FamilyBinding, binding_id)


def bindings_of_guardian(session: Session, guardian_id: str) -> list[FamilyBinding]:
    return list(session.scalars(
        select(FamilyBinding).where(FamilyBinding.guardian_person_id == guardian_id).order_by(FamilyBinding.id)))


def bindings_where(session: Session, side: str, person_id: str) -> list[FamilyBinding]:
    """The bindings in which ``person_id`` is the ``side`` ("guardian" or "member")."""
    column = getattr(FamilyBinding, f"{side}_person_id")
    return list(session.scalars(select(FamilyBinding).where(column == person_id).order_by(FamilyBinding.id)))


def count_members(session: Session, guardian_id: str) -> int:
    return session.scalar(
        select(func.count()).select_from(FamilyBinding).where(FamilyBinding.guardian_person_id == guardian_id))


def add_binding(session: Session, guardian_id: str, member_id: str, relation: str) -> FamilyBinding:
    binding = FamilyBinding(guardian_person_id=guardian_id, member_person_id=member_id, relation=relation)
    session.add(binding)
    session.flush()
    return binding


def guardian_ids(session: Session, member_ids: Iterable[str]) -> set[str]:
    """The guardians bound to any of these members."""
    return set(session.scalars(
        select(FamilyBinding.guardian_person_id).where(FamilyBinding.member_person_id.in_(list(member_ids)))))


def guarded_among(session: Session, person_ids: set[str]) -> set[str]:
    """Those of ``person_ids`` bound as a family member of another of them."""
    if not person_ids:
        return set()
    return set(session.scalars(select(FamilyBinding.member_person_id).where(
        FamilyBinding.member_person_id.in_(person_ids), FamilyBinding.guardian_person_id.in_(person_ids))))


# -- batch writes (the bulk importer) -------------------------------------------------------------
# A batch's new cards as rows ``(key, person_id, ehc_id, status, verifier)``; on PostgreSQL the
# rows arrive as COPY text and are staged first, elsewhere as tuples written with executemany.

CARD_STAGE = "card_import_stage"
_CREATE_CARD_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {CARD_STAGE} (
    key integer NOT NULL, person_id varchar(32) NOT NULL, ehc_id varchar(64) NOT NULL,
    status varchar(16) NOT NULL, verifier varchar(40)
) ON COMMIT DELETE ROWS
"""
_INSERT_STAGED_CARDS = f"""
INSERT INTO cards (ehc_id, person_id, status, sequence, temporary, channel, institution_id, operator, verifier,
                   issued_at, updated_at)
SELECT ehc_id, person_id, status, 1, false, :channel, :institution, :operator, verifier, :now, :now
FROM {CARD_STAGE} WHERE NOT (key = ANY(:lost))
"""
_INSERT_STAGED_EVENTS = f"""
INSERT INTO card_events (ehc_id, action, from_status, to_status, reason, actor_kind, actor_id, institution_id,
                         operator, channel, at)
SELECT ehc_id, :action, NULL, status, NULL, :kind, :actor_id, :institution, :operator, :channel, :now
FROM {CARD_STAGE} WHERE NOT (key = ANY(:lost)) ORDER BY key
"""
# Staged card ids whose 80-bit prefix an existing card or another staged card already has.
_STAGED_CLASHES = f"""
SELECT s.key FROM {CARD_STAGE} s
WHERE NOT (s.key = ANY(:lost)) AND (
    EXISTS (SELECT 1 FROM cards c WHERE c.ehc_id >= left(s.ehc_id, {CARD_ID_PREFIX})
                                    AND c.ehc_id < left(s.ehc_id, {CARD_ID_PREFIX}) || 'G')
    OR left(s.ehc_id, {CARD_ID_PREFIX}) IN (
        SELECT left(ehc_id, {CARD_ID_PREFIX}) FROM {CARD_STAGE} WHERE NOT (key = ANY(:lost))
        GROUP BY 1 HAVING count(*) > 1))
"""


def stage_cards(connection: Connection, payload: bytes) -> None:
    """Load a batch's cards (COPY text, PostgreSQL) into the transaction's staging table."""
    connection.exec_driver_sql(_CREATE_CARD_STAGE)
    connection.exec_driver_sql(f"TRUNCATE {CARD_STAGE}")
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(
        f"COPY {CARD_STAGE} (key, person_id, ehc_id, status, verifier) FROM STDIN"
    ) as copy:
        copy.write(payload)


def staged_clashes(connection: Connection, lost: list[int]) -> list[int]:
    return list(connection.execute(text(_STAGED_CLASHES), {"lost": lost}).scalars().all())


def restage_card_id(connection: Connection, key: int, ehc_id: str) -> None:
    connection.execute(text(f"UPDATE {CARD_STAGE} SET ehc_id = :ehc_id WHERE key = :key"),
                       {"ehc_id": ehc_id, "key": key})


def _who(actor: Actor, now: datetime) -> dict:
    return {"channel": actor.channel.value, "institution": actor.institution_id, "operator": actor.operator,
            "kind": actor.kind, "actor_id": actor.id, "now": now}


def insert_staged(connection: Connection, lost: list[int], action: str, actor: Actor, now: datetime) -> None:
    """The staged cards (but those of ``lost`` keys) and their first event."""
    params = {**_who(actor, now), "lost": lost, "action": action}
    connection.execute(text(_INSERT_STAGED_CARDS), params)
    connection.execute(text(_INSERT_STAGED_EVENTS), params)


def insert_rows(connection: Connection, rows: list[tuple], action: str, actor: Actor, now: datetime) -> None:
    """Cards given as ``(key, person_id, ehc_id, status, verifier)`` rows, and their first event."""
    who = _who(actor, now)
    connection.execute(insert(Card.__table__), [
        {"ehc_id": r[2], "person_id": r[1], "status": r[3], "sequence": 1, "temporary": False,
         "channel": who["channel"], "institution_id": who["institution"], "operator": who["operator"],
         "verifier": r[4], "issued_at": now, "updated_at": now} for r in rows])
    connection.execute(insert(CardEvent.__table__), [
        {"ehc_id": r[2], "action": action, "from_status": None, "to_status": r[3], "reason": None,
         "actor_kind": who["kind"], "actor_id": who["actor_id"], "institution_id": who["institution"],
         "operator": who["operator"], "channel": who["channel"], "at": now} for r in rows])



def events_after(session: Session, after_id: int, limit: int) -> list:
    """Card events with an id above ``after_id``, in id order, with their card's holder and issuing
    institution: the statistics pipeline's reading of this domain."""
    return list(session.execute(
        select(CardEvent.id, CardEvent.at, CardEvent.action, CardEvent.from_status, CardEvent.to_status,
               CardEvent.channel, CardEvent.institution_id, Card.person_id, Card.institution_id.label("card_institution"))
        .join(Card, Card.ehc_id == CardEvent.ehc_id)
        .where(CardEvent.id > after_id).order_by(CardEvent.id).limit(limit)))
