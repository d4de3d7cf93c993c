"""The audit trail: who read or changed a resident's personal data, as a tamper-evident hash chain.

Recording (:func:`record_access`) is called by the master index where sealed personal data is opened
(``mpi.service.demographics`` / ``identifiers_of``) and by the card service where a card or its
holder's details change. It skips the resident acting on their own data and records everyone else.

How an event is written, and why (docs/security.md, "Audit trail", has the measurements):

1. **Intake**, inside the caller's transaction: the event is inserted at once by one prepared Core
   statement (or by a statement of the caller's, :func:`access_insert`), with ``seq``/``prev_hash``/
   ``hash`` empty; not an ORM object, whose flush cost more client CPU than the insert itself. No
   lock, no extra round trip; a request that opens name, phone and document of one
   person, or reads then changes them, leaves *one* event per (person, purpose) in its unit of work (a
   read upgraded to a change when the work changes them). The event commits or rolls back with the
   request's work: nothing acknowledged is lost, not even to ``kill -9`` right after the commit.
2. **Chaining**, later and in batches (:func:`chain_pending`): under the chain lock (PostgreSQL:
   a transaction-scoped advisory lock; SQLite: its single write lock), the tail and every event
   waiting in intake, committed by anyone, are read in one query, linked in intake order (``seq`` + 1,
   ``hash = SM3(prev_hash || canonical(event))``) and updated, and the COMMIT releases the lock. Who
   chains: the sweeper thread of every ``ehc serve`` worker (:func:`start_sweeper`, every 0.2 s), and
   every reader of the trail *first* (search and the auditors' API, a resident's access log, the CLI's
   export, ``ehc audit verify``), which waits for a chaining under way so that it reads every event
   committed before it; ``bulk.record_changes`` chains what waits before it links its own.

Why not at commit. Until 2026-12 each audited commit tried the lock at commit and chained its own
event when it was free: three more statements a transaction (the lock, the tail, the update), one of
them under a lock every writer wants, and a transaction that holds it until its COMMIT is durable.
Measured (docs/benchmarks.md, ``audit``), that made an audited transaction cost about twice a plain
insert, on PostgreSQL (many processes, the lock contended) and on SQLite as well (one process, but
the chaining's statements and a second write of the row in every commit). A batch links dozens of
events in the same three statements. Waiting for the lock at commit instead is worse still: every
audited transaction queues behind the previous one's COMMIT (3-5x slower as writers are added).

Consequences: the chain is gap-free and fork-free (``seq`` is only ever assigned under the lock, from
the committed tail, and is unique in the table as a backstop); an event exists if and only if the
unit of work that made it committed, so a rolled-back request leaves neither a gap nor a record of a
change that did not happen; an event is chained within the sweeper's interval while a server runs,
and in any case before anyone reads the trail. Code that needs ``seq``/``hash`` right after its
commit (a test) chains first, as a reader does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, bindparam, event, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import ColumnElement, FromClause

from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Invalid, field_error
from . import repository
from .chain import (
    CHAIN_LOCK_KEY,
    CHAINED_FIELDS,
    GENESIS,
    UNIT_OF_WORK,
    canonical,
    chain_pending,
    check_purpose,
    link,
)
from .models import AuditEvent

# Re-exported, this module being the domain's public face: the chain's mechanics (``chain.py``) above,
# and bulk recording for registry migrations (``bulk.py``).
from .bulk import record_changes

__all__ = [
    "ACCESS_COLUMNS", "ACTIONS", "CHAIN_LOCK_KEY", "CHAINED_FIELDS", "GENESIS", "MAX_PAGE", "ChainReport", "Filters", "Page",
    "access_insert", "access_values", "access_values_found", "recorded_by_statement",
    "Sweeper", "access_log_for_person", "canonical", "chain_pending", "check_purpose", "iter_events", "link",
    "person_ids_for_card", "record_access", "record_statistics_query", "record_changes", "resolve_people_with", "search", "start_sweeper",
    "verify_chain",
]

ACTIONS = ("read", "change")
log = logging.getLogger("ehc.audit")



# -- recording ------------------------------------------------------------------------------------

@dataclass(eq=False)
class _Recorded:
    """An event this unit of work wrote (its row id, the action it holds now) and the savepoints it
    was written / upgraded in (None: the transaction itself), to forget it if one of them rolls back."""

    id: int
    action: str
    written_in: SessionTransaction | None
    upgraded_in: SessionTransaction | None = None


# One statement, built once: an event is a row written with a Core INSERT executed at once, not an
# ORM object flushed later. The unit of work's flush cost 40-250 µs of client CPU an event, enough to
# keep an audited request from issue 12's 0.8x of a plain insert (docs/benchmarks.md, ``audit``).
# Executed at once, it is visible to the rest of the transaction (as the ORM's autoflush made it),
# and ids follow the order events are recorded in (the chaining's order).
_INSERT_EVENT = insert(AuditEvent.__table__).returning(AuditEvent.__table__.c.id)
_UPGRADE_EVENT = (update(AuditEvent.__table__).where(AuditEvent.__table__.c.id == bindparam("event_id"))
                  .values(action="change"))


def record_access(ctx: Ctx, person_id: str, action: str, purpose: str) -> None:
    """Record that ``ctx.actor`` read or changed the personal data of ``person_id`` for ``purpose``.

    Nothing is recorded when the resident acts on their own data (``actor.kind == "resident"`` and
    ``actor.id == person_id``). Within one unit of work (one transaction) a (person, purpose) is
    recorded once; a change after a read upgrades that one event to a change. The event is written
    at once, in the caller's transaction (and savepoint, if any): it commits or rolls back with it.
    """
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}, not {action!r}")
    check_purpose(purpose)
    actor = ctx.actor
    if actor.kind == "resident" and actor.id == person_id:
        return
    session = ctx.session
    recorded: dict[tuple[str, str], _Recorded] = session.info.setdefault(UNIT_OF_WORK, {})
    earlier = recorded.get((person_id, purpose))
    # Forgotten here: an event written (or upgraded) in a savepoint that rolled back
    # (``_forget_rolled_back``), and one chained in this transaction (final: a later access starts a
    # new one, ``chain_pending``).
    if earlier is not None:
        if action == "change" and earlier.action != "change":
            session.connection().execute(_UPGRADE_EVENT, {"event_id": earlier.id})
            earlier.action, earlier.upgraded_in = "change", session.get_nested_transaction()
        return
    event_id = session.connection().execute(_INSERT_EVENT, {
        "at": utcnow(), "action": action, "purpose": purpose, "person_id": person_id, "actor_kind": actor.kind,
        "actor_id": actor.id, "actor_role": ",".join(sorted(actor.roles)) or None,
        "institution_id": actor.institution_id, "operator": actor.operator, "channel": actor.channel.value,
        "request_id": ctx.request_id,
    }).scalar_one()
    recorded[(person_id, purpose)] = _Recorded(event_id, action, session.get_nested_transaction())


ACCESS_COLUMNS = ("at", "action", "purpose", "person_id", "actor_kind", "actor_id", "actor_role", "institution_id",
                  "operator", "channel", "request_id")


def access_insert(only_with: FromClause, *, person_id: ColumnElement | None = None) -> Insert:
    """The event :func:`record_access` adds, as an ``INSERT ... SELECT`` that inserts it once for each
    row of ``only_with`` (a CTE of the caller's statement: no row, no event), returning its id; its
    values are the parameters :func:`access_values` gives. Built once by the caller and reused.
    ``person_id``: a column of ``only_with`` naming the person read, for a statement that finds them
    itself (the window's look-up by document); its parameters are then :func:`access_values_found`'s.

    For a hot path that makes its work and its audit record in one round trip (the online QR check:
    the use is recorded, and the holder's details read, only when its code was claimed). The event
    commits or rolls back with the caller's transaction like every other."""
    table = AuditEvent.__table__
    row = select(*(person_id if name == "person_id" and person_id is not None
                   else bindparam(f"audit_{name}", type_=table.c[name].type) for name in ACCESS_COLUMNS))
    return insert(table).from_select(list(ACCESS_COLUMNS), row.select_from(only_with)).returning(table.c.id)


def _values(ctx: Ctx, person_id: str | None, action: str, purpose: str) -> dict[str, Any]:
    actor = ctx.actor
    values = {"at": utcnow(), "action": action, "purpose": purpose, "person_id": person_id, "actor_kind": actor.kind,
              "actor_id": actor.id, "actor_role": ",".join(sorted(actor.roles)) or None,
              "institution_id": actor.institution_id, "operator": actor.operator, "channel": actor.channel.value,
              "request_id": ctx.request_id}
    if person_id is None:
        del values["person_id"]
    return {f"audit_{name}": value for name, value in values.items()}


def access_values(ctx: Ctx, person_id: str, action: str, purpose: str) -> dict[str, Any] | None:
    """The parameters of :func:`access_insert` for ``ctx.actor`` reading or changing ``person_id``'s
    data for ``purpose``. None when nothing is recorded (the resident acting on their own data), or
    when this unit of work has already recorded this (person, purpose): then :func:`record_access`
    is the way, which keeps one event for both. The event is chained by the next batch, as every
    event is (module docstring)."""
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}, not {action!r}")
    check_purpose(purpose)
    actor = ctx.actor
    own = actor.kind == "resident" and actor.id == person_id
    if own or (person_id, purpose) in ctx.session.info.get(UNIT_OF_WORK, {}):
        return None
    return _values(ctx, person_id, action, purpose)


def access_values_found(ctx: Ctx, action: str, purpose: str) -> dict[str, Any] | None:
    """:func:`access_values` for an :func:`access_insert` whose statement finds the person itself
    (``person_id`` given there as a column), so the rules that need the person cannot be applied up
    front: None when they might matter (the actor is a resident, who may be reading their own data;
    this unit of work has recorded anything under ``purpose``, which may be this person's event),
    and the caller reads first and records with :func:`record_access`. After the statement, the
    caller gives the event to :func:`recorded_by_statement`."""
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}, not {action!r}")
    check_purpose(purpose)
    if ctx.actor.kind == "resident" or any(key[1] == purpose for key in ctx.session.info.get(UNIT_OF_WORK, ())):
        return None
    return _values(ctx, None, action, purpose)


def recorded_by_statement(ctx: Ctx, person_id: str, action: str, purpose: str, event_id: int) -> None:
    """The event an :func:`access_insert` of the caller's wrote, kept as :func:`record_access` keeps
    its own: a later access to the same person for the same purpose in this unit of work is this
    one event (a change upgrades it), and a savepoint rolled back forgets it."""
    session = ctx.session
    session.info.setdefault(UNIT_OF_WORK, {})[(person_id, purpose)] = _Recorded(
        event_id, action, session.get_nested_transaction())


# The subject of an event that concerns no resident: a query of aggregate statistics.
NO_PERSON = "-"


def record_statistics_query(ctx: Ctx, purpose: str) -> None:
    """Record that ``ctx.actor`` queried aggregate statistics (``stats.card_uses``, ...): in the same
    hash chain as every access, under no resident (``NO_PERSON``), found by purpose or actor."""
    record_access(ctx, NO_PERSON, "read", purpose)


@event.listens_for(Session, "after_transaction_end")
def _forget_unit_of_work(session: Session, transaction) -> None:  # noqa: ANN001
    if transaction.parent is None:
        session.info.pop(UNIT_OF_WORK, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint rolled back: its events are gone (a later access records anew), its upgrades undone."""
    recorded = session.info.get(UNIT_OF_WORK)
    if not recorded:
        return
    boundary = transaction  # what the database rolled back: the nearest savepoint (or the transaction)
    while boundary.parent is not None and not boundary.nested:
        boundary = boundary.parent
    if boundary.parent is None:  # the whole transaction: ``_forget_unit_of_work`` forgets everything
        return

    def undone(written_in: SessionTransaction | None) -> bool:
        while written_in is not None:
            if written_in is boundary:
                return True
            written_in = written_in.parent
        return False

    for key, entry in list(recorded.items()):
        if undone(entry.written_in):
            del recorded[key]
        elif entry.upgraded_in is not None and undone(entry.upgraded_in):
            entry.action, entry.upgraded_in = "read", None


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_chain`` found. ``broken_seq`` is the first seq that does not hold up."""

    intact: bool
    events: int  # chained events examined
    head_seq: int  # the last seq (0 for an empty chain)
    head_hash: str  # its hash (GENESIS for an empty chain): note it down to detect truncation later
    unchained: int  # events in intake, not yet chained (normally 0)
    broken_seq: int | None = None
    problem: str | None = None  # missing | edited | reordered | relinked | anchor_mismatch | truncated
    detail: str | None = None

    def summary(self) -> str:
        if self.intact:
            text = f"chain intact: {self.events} events (head seq {self.head_seq}, hash {self.head_hash})"
            return text + (f"; {self.unchained} events waiting to be chained" if self.unchained else "")
        return f"chain broken at seq {self.broken_seq} ({self.problem}): {self.detail}"


REORDER_WINDOW = 64  # how far from its place a moved event is looked for, to say "reordered"


def verify_chain(ctx: Ctx, *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Walk the chain from seq 1 and report the first broken link, naming its seq.

    Detects an edited event (its hash no longer matches its contents), a deleted one (a gap in seq,
    or a later event renumbered into its place), reordered events (an event whose contents hash
    correctly under another seq), and a rewritten link (prev_hash differs from the hash before).
    A chain truncated at its end, or rewritten wholesale with recomputed hashes, is only detectable
    against an ``anchor`` (seq, hash) noted down earlier, e.g. from a previous ``ehc audit verify``.
    Reads in streaming (constant memory) and takes no lock: appends carry on meanwhile.
    """
    session = ctx.session
    unchained = repository.count_unchained(session)
    rows = repository.chained_rows(session)
    expected, prev, count = 1, GENESIS, 0

    def broken(seq: int, problem: str, detail: str) -> ChainReport:
        rows.close()
        return ChainReport(False, count, expected - 1, prev, unchained, seq, problem, detail)

    for row in rows:
        seq = row["seq"]
        if seq != expected:
            gone = f"event {expected} is" if seq == expected + 1 else f"events {expected} to {seq - 1} are"
            return broken(expected, "missing", f"{gone} missing: deleted from the chain (the next one present is {seq})")
        if link(row["prev_hash"] or GENESIS, row) != row["hash"]:
            moved_from = _chained_as(row)
            if moved_from is not None:
                return broken(seq, "reordered", f"the event at seq {seq} was chained as seq {moved_from}: events "
                              "were reordered, or one was deleted and later ones renumbered")
            return broken(seq, "edited", f"the event at seq {seq} does not match its hash: a field was edited")
        if row["prev_hash"] != prev:
            return broken(seq, "relinked", f"the event at seq {seq} does not link to seq {seq - 1} (its prev_hash "
                          f"is not seq {seq - 1}'s hash): seq {seq - 1} was rewritten with a new hash, or an "
                          "event was inserted or removed before it")
        if anchor is not None and seq == anchor[0] and row["hash"] != anchor[1]:
            return broken(seq, "anchor_mismatch", f"seq {seq}'s hash differs from the anchor: the chain was "
                          "rewritten (hashes recomputed) at or before this seq")
        prev, expected, count = row["hash"], expected + 1, count + 1
    if anchor is not None and anchor[0] > count:
        return ChainReport(False, count, count, prev, unchained, count + 1, "truncated",
                           f"the chain ends at seq {count} but the anchor is seq {anchor[0]}: events were "
                           "deleted from its end")
    return ChainReport(True, count, count, prev, unchained)


def _chained_as(row: Any) -> int | None:
    """The seq under which ``row``'s contents were chained, when that is not where it sits now."""
    for delta in range(1, REORDER_WINDOW + 1):
        for candidate in (row["seq"] - delta, row["seq"] + delta):
            if candidate >= 1 and link(row["prev_hash"] or GENESIS, {**row, "seq": candidate}) == row["hash"]:
                return candidate
    return None


# -- reading the trail ----------------------------------------------------------------------------

MAX_PAGE = 200


@dataclass(frozen=True)
class Filters:
    """What an auditor searches by; every given filter must match."""

    person_ids: Sequence[str] | None = None  # a person and everyone merged into them
    actor_id: str | None = None
    institution_id: str | None = None
    purpose: str | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class Page:
    events: list[AuditEvent]
    next_before: int | None  # pass as ``before`` for the next (older) page; None on the last page


def search(ctx: Ctx, filters: Filters, *, before: int | None = None, limit: int = 50) -> Page:
    """Chained events matching ``filters``, newest first, in pages (keyset on seq). Events still in
    intake are chained first (after a chaining under way, if any), so the answer holds every event
    committed before it."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit is 1 to {MAX_PAGE}.", code="limit_invalid",
                      errors=[field_error("limit", "limit_invalid", f"1 to {MAX_PAGE}")])
    if filters.action is not None and filters.action not in ACTIONS:
        raise Invalid("action is read or change.", code="action_invalid",
                      errors=[field_error("action", "action_invalid", "read or change")])
    for name in ("since", "until"):
        moment = getattr(filters, name)
        if moment is not None and moment.tzinfo is None:
            raise Invalid(f"{name} needs a time zone, e.g. 2026-01-31T08:00:00+08:00.", code="time_zone_required",
                          errors=[field_error(name, "time_zone_required", "Add a time zone (Z or +08:00).")])
    if filters.since and filters.until and filters.since >= filters.until:
        raise Invalid("since must be before until.", code="time_range_invalid",
                      errors=[field_error("since", "time_range_invalid", "since must be before until")])
    if before is None and repository.has_unchained(ctx.session):  # the first page: bring the chain up to date
        # Waiting (not trying) for the lock: a chaining under way elsewhere (a sweeper) has not
        # committed yet, so its events would be missing from this read; after its COMMIT, this
        # transaction reads the new tail and chains what is left. Readers are rare, the wait short.
        chain_pending(ctx.session, wait=True)
    events = repository.chained_events(
        ctx.session, person_ids=filters.person_ids, actor_id=filters.actor_id, institution_id=filters.institution_id,
        purpose=filters.purpose, action=filters.action, since=filters.since, until=filters.until, before=before,
        limit=limit + 1)
    more = len(events) > limit
    events = events[:limit]
    return Page(events, events[-1].seq if more else None)


class Sweeper:
    """A daemon thread that chains what busy moments left in intake, every ``interval`` seconds.

    ``ehc serve`` runs one per worker process; at most one chains at a time (the chain lock), and
    one that finds nothing waiting costs a single indexed query.
    """

    def __init__(self, db, interval: float = 0.2) -> None:  # noqa: ANN001
        self.db = db
        self.interval = interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ehc-audit-sweeper", daemon=True)

    def start(self) -> "Sweeper":
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.db.session() as session:
                    if repository.has_unchained(session):
                        chain_pending(session, wait=False)
            except Exception:  # a database hiccup: the next round tries again
                log.warning("audit sweeper round failed", exc_info=True)


def start_sweeper(db, interval: float = 0.2) -> Sweeper:  # noqa: ANN001
    return Sweeper(db, interval).start()


# -- whose events: people across merges, a card's holder ---------------------------------------------
# The trail sits below every domain (they all record to it), so it knows neither cards nor the master
# index. Who a card's holder is, and which master index ids are one person (the holder and anyone
# merged into them, e.g. the temporary card of their emergency admission), it asks through these
# two look-ups, registered once per process by ``ehc.wiring``.
CardHolder = Callable[[Ctx, str], str]  # (ctx, EHC ID) -> the holder's master index id
SamePerson = Callable[[Ctx, str], list[str]]  # (ctx, master index id) -> every id of that person
_card_holder: CardHolder | None = None
_same_person: SamePerson | None = None


def resolve_people_with(*, card_holder: CardHolder, same_person: SamePerson) -> None:
    global _card_holder, _same_person
    _card_holder, _same_person = card_holder, same_person


def _ids_of_person(ctx: Ctx, person_id: str) -> list[str]:
    if _same_person is None:
        raise RuntimeError("audit: no person look-up registered (ehc.wiring.register_hooks)")
    return _same_person(ctx, person_id)


def person_ids_for_card(ctx: Ctx, ehc_id: str) -> list[str]:
    """The master index ids whose events concern this card's holder (the holder and anyone merged
    into them)."""
    if _card_holder is None:
        raise RuntimeError("audit: no card look-up registered (ehc.wiring.register_hooks)")
    return _ids_of_person(ctx, _card_holder(ctx, ehc_id))


def access_log_for_person(ctx: Ctx, person_id: str, *, before: int | None = None, limit: int = 50) -> Page:
    """Who read or changed this person's data: what the resident sees (newest first, in pages)."""
    return search(ctx, Filters(person_ids=_ids_of_person(ctx, person_id)), before=before, limit=limit)


def iter_events(ctx: Ctx, filters: Filters) -> Iterator[AuditEvent]:
    """Every matching event, newest first (the CLI's export)."""
    before = None
    while True:
        page = search(ctx, filters, before=before, limit=MAX_PAGE)
        yield from page.events
        if page.next_before is None:
            return
        before = page.next_before
