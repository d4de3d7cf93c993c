"""Cards' queries: the card registry's tables read and written, and nothing decided here (the rules
are in ``service.py``). A card, one step of its life, a family binding; the bulk importer's batch
writes of the same rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from sqlalchemy import ARRAY, Insert, Select, String, any_, bindparam, func, insert, literal_column, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.sql import FromClause

from ..kit import dialect
from ..kit.context import Actor
from ..kit.copytext import copy_line, copy_value
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


@functools.cache  # every card issue runs it: a statement is cheap to run and costly to build
def _id_prefix_taken_statement() -> Select:
    return with_id_prefix_param().with_only_columns(Card.ehc_id)


def id_prefix_taken(bind: Bind, prefix: str) -> bool:
    return bind.scalar(_id_prefix_taken_statement(), id_prefix_params(prefix)) is not None


def any_card(session: Session) -> bool:
    return session.scalar(select(Card.ehc_id).limit(1)) is not None


def add(session: Session, card: Card) -> Card:
    session.add(card)
    session.flush()
    return card


@functools.cache  # one a dialect, built once
def _insert_new_statement(dialect_name: str):  # noqa: ANN202
    return dialect.insert_unless_refused(Card.__table__, "ehc_id", dialect_name)


def insert_new(session: Session, card: Card) -> bool:
    """Insert a new card (every column set) unless a unique index refuses it: its id's 80-bit prefix
    taken, or its holder with a card already. Whether it went in; if so it is in the session as if
    loaded, without the unit of work's flush (one statement, ``INSERT ... ON CONFLICT DO NOTHING``)."""
    row = {c.name: getattr(card, c.key) for c in Card.__table__.columns}
    if session.execute(_insert_new_statement(dialect.name(session)), row).first() is None:
        return False
    make_transient_to_detached(card)
    session.add(card)
    return True


class IssueWithEvents:
    """One statement (PostgreSQL): a new card (every column set, as :func:`insert_new` writes it,
    refused by any unique index: its id's 80-bit prefix taken, or its holder with a card already);
    only if it went in, its first event (``event_<column>`` for each of ``EVENT_COLUMNS`` but the
    card's id) and, given, an audit event (the parameters of ``audit``'s insert, from a CTE of the
    card's row). One round trip instead of three; the same rows, and all of them or none.

    Built once, on first use (a statement is cheap to run and costly to build); ``audit`` is the
    audit trail's part: its event's insert from a CTE of rows (``audit.service.access_insert``)."""

    def __init__(self, audit: Callable[[FromClause], Insert]) -> None:
        self._audit = audit
        self._statements: tuple[Select, Select] | None = None

    def _build(self) -> tuple[Select, Select]:
        cards, events = Card.__table__, CardEvent.__table__
        card = (pg_insert(cards).values({c.name: bindparam(c.name, type_=c.type) for c in cards.columns})
                .on_conflict_do_nothing().returning(cards.c.ehc_id, cards.c.person_id).cte("card"))
        event_row = select(card.c.ehc_id, *(bindparam(f"event_{name}", type_=events.c[name].type)
                                            for name in EVENT_COLUMNS if name != "ehc_id"))
        event = (insert(events).from_select(list(EVENT_COLUMNS), event_row.select_from(card))
                 .returning(events.c.id).cte("event"))
        audited = self._audit(card).cte("audited")
        event_id = select(event.c.id).scalar_subquery()
        return (select(card.c.ehc_id, event_id, select(audited.c.id).scalar_subquery()),
                select(card.c.ehc_id, event_id, null()))

    def __call__(self, session: Session, card: Card, event: dict,
                 audit: dict | None) -> tuple[int, int | None] | None:
        """(the card event's id, the audit event's id or None without ``audit``), the card then in the
        session as if loaded (as :func:`insert_new` leaves it); None when a unique index refused the
        card (nothing is written then)."""
        if self._statements is None:
            self._statements = self._build()
        with_audit, without = self._statements
        params = {c.name: getattr(card, c.key) for c in Card.__table__.columns}
        params.update({f"event_{name}": event[name] for name in EVENT_COLUMNS if name != "ehc_id"})
        row = session.connection().execute(with_audit if audit is not None else without,
                                           {**params, **(audit or {})}).first()
        if row is None:
            return None
        make_transient_to_detached(card)
        session.add(card)
        return row[1], row[2]


# The columns of a card's event as the issue writes them (every one but its id).
EVENT_COLUMNS = ("ehc_id", "action", "from_status", "to_status", "reason", "actor_kind", "actor_id", "institution_id",
                 "operator", "channel", "at")


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
# A batch's new cards as rows ``(key, person_id, ehc_id, status, verifier)``: on PostgreSQL written
# with ``COPY``, elsewhere with executemany.

_CARD_COLUMNS = ("ehc_id", "person_id", "status", "verifier", "sequence", "temporary", "channel", "institution_id",
                 "operator", "issued_at", "updated_at")
_EVENT_COLUMNS = ("ehc_id", "to_status", "action", "from_status", "reason", "actor_kind", "actor_id",
                  "institution_id", "operator", "channel", "at")


def id_prefixes_taken(bind: Bind, prefixes: list[str]) -> set[str]:
    """Which of these 80-bit prefixes a card already has (the unique index on the prefix answers)."""
    # Constants, not parameters, so the expression is the unique index's own (substr(ehc_id, 1, 20)).
    prefix = func.substr(Card.ehc_id, literal_column("1"), literal_column(str(CARD_ID_PREFIX)))
    if dialect.is_postgresql(bind):  # one statement with an array, not thousands of bound parameters
        return set(bind.scalars(select(prefix).where(prefix == any_(bindparam("prefixes", type_=ARRAY(String)))),
                                {"prefixes": prefixes}))
    taken: set[str] = set()
    for start in range(0, len(prefixes), 1000):
        taken.update(bind.scalars(select(prefix).where(prefix.in_(prefixes[start:start + 1000]))))
    return taken


def _who(actor: Actor, now: datetime) -> dict:
    return {"channel": actor.channel.value, "institution": actor.institution_id, "operator": actor.operator,
            "kind": actor.kind, "actor_id": actor.id, "now": now}


def insert_rows(connection: Connection, rows: list[tuple], action: str, actor: Actor, now: datetime) -> None:
    """Cards given as ``(key, person_id, ehc_id, status, verifier)`` rows, and their first event (in
    the rows' order)."""
    who = _who(actor, now)
    if dialect.can_copy(connection):
        card_tail = "\t" + copy_line((1, "f", who["channel"], who["institution"], who["operator"], now, now))
        event_tail = "\t" + copy_line((action, None, None, who["kind"], who["actor_id"], who["institution"],
                                        who["operator"], who["channel"], now))
        dialect.copy_rows(connection, "cards", _CARD_COLUMNS, "".join(
            f"{r[2]}\t{r[1]}\t{r[3]}\t{copy_value(r[4])}{card_tail}" for r in rows).encode())
        dialect.copy_rows(connection, "card_events", _EVENT_COLUMNS, "".join(
            f"{r[2]}\t{r[3]}{event_tail}" for r in rows).encode())
        return
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
