"""The audit trail: who read or changed a resident's personal data, as a tamper-evident hash chain.

Recording (:func:`record_access`) is called by the master index where sealed personal data is opened
(``mpi.service.demographics`` / ``identifiers_of``) and by the card service where a card or its
holder's details change. It skips the resident acting on their own data and records everyone else.

How an event is written, and why (docs/security.md, "Audit trail", has the measurements):

1. **Intake**, inside the caller's transaction: the event is added to the session like any other row,
   with ``seq``/``prev_hash``/``hash`` empty. No lock, no extra round trip; a request that opens
   name, phone and document of one person, or reads then changes them, leaves *one* event per
   (person, purpose) in its unit of work (a read upgraded to a change when the work changes them).
   The event commits or rolls back with the request's work.
2. **Chaining**, just before that transaction commits (a ``before_commit`` hook): every other
   pending write is flushed, then the chain lock is *tried* (PostgreSQL:
   ``pg_try_advisory_xact_lock``; SQLite already holds its single write lock). If it is free, the
   tail and every event waiting in intake (this transaction's, and any committed by others) are read
   in one query, linked in intake order (``seq`` + 1, ``hash = SM3(prev_hash || canonical(event))``)
   and the COMMIT releases the lock. If another transaction holds it, this one does not wait: it
   commits its events unchained, and the next chaining picks them up, together with everyone
   else's, in one batch: the next audited commit that gets the lock, the sweeper thread of
   ``ehc serve`` (:func:`start_sweeper`, every 0.2 s), or a reader of the trail (search, access log,
   ``ehc audit verify``), which chain first. Waiting instead (a blocking lock) would make every
   audited transaction queue behind the previous one's COMMIT, and measured on PostgreSQL that
   convoy cuts throughput by 3-5x as writers are added; not waiting lets commits proceed in
   parallel (group commit) while the chain grows in batches.

Consequences: the chain is gap-free and fork-free (``seq`` is only ever assigned under the lock, from
the committed tail, and is unique in the table as a backstop); an event exists if and only if the
unit of work that made it committed, so a rolled-back request leaves neither a gap nor a record of a
change that did not happen; an uncontended commit is chained at once, a contended one within the
next chaining (milliseconds under load, at most the sweeper's interval while the server runs).
Events of a session joined to an outer connection transaction (it never calls ``Session.commit``)
take the same path as contended ones.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, event, func, select, text, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..crypto import sm3
from ..kit import dialect
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Invalid, field_error
from .models import AuditEvent

ACTIONS = ("read", "change")
GENESIS = "0" * 64  # prev_hash of seq 1
# The fields a link covers, in the canonical encoding (format version 1). See ``canonical``.
CHAINED_FIELDS = (
    "seq", "at", "action", "purpose", "person_id", "actor_kind", "actor_id", "actor_role",
    "institution_id", "operator", "channel", "request_id",
)
# One advisory lock key for the whole chain: the first 8 bytes of SM3("ehc.audit.chain"), signed.
CHAIN_LOCK_KEY = int.from_bytes(sm3(b"ehc.audit.chain")[:8], "big", signed=True)
log = logging.getLogger("ehc.audit")
_PURPOSE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
_UOW = "ehc.audit.unit_of_work"  # Session.info key: {(person_id, purpose): AuditEvent} of this transaction

# What each purpose means, for people reading a log (the resident's "who looked at my data").
PURPOSES: dict[str, tuple[str, str]] = {
    "card.view": ("Viewed the card and its holder", "查看电子健康卡及持卡人信息"),
    "card.lookup": ("Looked up the card by identity document", "凭证件查询电子健康卡"),
    "card.register": ("Registered a card", "注册电子健康卡"),
    "card.modify": ("Changed the holder's details", "修改持卡人信息"),
    "card.lifecycle": ("Changed the card's status (lost, reissue, cancel, review)", "变更卡状态（挂失、补办、注销、审核）"),
    "card.family": ("Family members: binding and listing", "家庭成员绑定与查询"),
    "card.newborn": ("Registered a newborn with a parent's card", "凭父母卡登记新生儿"),
    "card.temporary": ("Temporary card for an unidentified patient", "为身份不明患者办理临时卡"),
    "card.merge": ("Merged a temporary card into the identified person's card", "临时卡合并至本人卡"),
    "card.verify": ("Scanned the card's QR code (registration, payment, care)", "扫描电子健康卡二维码（挂号、缴费、诊疗）"),
    "card.pin": ("Set, changed or cleared the card's PIN (second factor for printed codes)",
                 "设置、修改或清除健康卡密码（纸质二维码的二次验证）"),
    "card.second_factor": ("Sent a one-time code to the holder's phone to confirm a printed code's use",
                           "向持卡人手机发送验证码，确认纸质二维码的使用"),
    "card.print": ("Printed the card's QR code label (masked name)", "打印电子健康卡二维码标签（姓名部分隐藏）"),
    "mpi.lookup": ("Found the person by a hospital number, social security or insurance number",
                   "凭医院患者号、社保卡号或医保号查找本人"),
    "mpi.identifiers": ("Linked, unlinked or listed hospital and insurance numbers", "关联、解除或查看医院及医保号码"),
    "mpi.review": ("Reviewed a possible duplicate record", "审核疑似重复档案"),
    "mpi.merge": ("Merged or separated duplicate records of the same person", "合并或拆分同一人的重复档案"),
    "mpi.match": ("Compared a hospital's patient with the master index and found this person as a candidate",
                  "医院患者与主索引比对，本人为候选匹配"),
    "fhir.read": ("Read the patient's record in the master index (FHIR)", "通过FHIR接口查看主索引中的患者信息"),
    "fhir.pix": ("Looked up the patient's numbers at other services (IHE PIXm)", "查询患者在各机构的标识号（IHE PIXm）"),
    "fhir.search": ("Searched the master index by identity details (IHE PDQm)", "按身份信息检索主索引（IHE PDQm）"),
    "account.sign_in": ("Sign-in on a shared phone: checked the document number's last characters",
                        "共用手机号登录：核对证件号后四位"),
}


# -- recording ------------------------------------------------------------------------------------

def check_purpose(purpose: str) -> str:
    """A purpose is a dotted lower-case code (``card.lookup``), at most 40 characters."""
    if not isinstance(purpose, str) or len(purpose) > 40 or not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"audit purpose must be a dotted lower-case code like 'card.view', not {purpose!r}")
    return purpose


def record_access(ctx: Ctx, person_id: str, action: str, purpose: str) -> None:
    """Record that ``ctx.actor`` read or changed the personal data of ``person_id`` for ``purpose``.

    Nothing is recorded when the resident acts on their own data (``actor.kind == "resident"`` and
    ``actor.id == person_id``). Within one unit of work (one transaction) a (person, purpose) is
    recorded once; a change after a read upgrades that one event to a change.
    """
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}, not {action!r}")
    check_purpose(purpose)
    actor = ctx.actor
    if actor.kind == "resident" and actor.id == person_id:
        return
    session = ctx.session
    recorded: dict[tuple[str, str], AuditEvent] = session.info.setdefault(_UOW, {})
    earlier = recorded.get((person_id, purpose))
    # ``in session``: an event added inside a savepoint that rolled back was expunged with it;
    # a chained event is final, so a later access starts a new one.
    if earlier is not None and earlier in session and earlier.seq is None:
        if action == "change":
            earlier.action = "change"
        return
    entry = AuditEvent(
        at=utcnow(),
        action=action,
        purpose=purpose,
        person_id=person_id,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_role=",".join(sorted(actor.roles)) or None,
        institution_id=actor.institution_id,
        operator=actor.operator,
        channel=actor.channel.value,
        request_id=ctx.request_id,
    )
    session.add(entry)
    recorded[(person_id, purpose)] = entry


@event.listens_for(Session, "before_commit")
def _chain_on_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint's commit, not the unit of work's
        return
    if not session.info.get(_UOW):
        return
    # Flush every other write first: the lock is held only for "read tail, link, COMMIT".
    session.flush()
    chain_pending(session, wait=False)


@event.listens_for(Session, "after_transaction_end")
def _forget_unit_of_work(session: Session, transaction) -> None:  # noqa: ANN001
    if transaction.parent is None:
        session.info.pop(_UOW, None)


# -- the chain ------------------------------------------------------------------------------------

def canonical(row: Any) -> bytes:
    """The bytes a link covers: a JSON object of ``CHAINED_FIELDS`` and ``"v": 1``, keys sorted, no
    spaces, UTF-8 (not ASCII-escaped), absent values as ``null``, ``at`` as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC. ``row`` is anything with those attributes or keys."""
    get = row.get if isinstance(row, dict) else (lambda k: getattr(row, k))
    doc: dict[str, Any] = {"v": 1}
    for name in CHAINED_FIELDS:
        value = get(name)
        if name == "at":
            value = _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        doc[name] = value
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def link(prev_hash: str, row: Any) -> str:
    """``hex(SM3(bytes(prev_hash) || canonical(row)))``: the hash of one chain link."""
    return sm3(bytes.fromhex(prev_hash) + canonical(row)).hex()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _lock_chain(session: Session, wait: bool) -> bool:
    # PostgreSQL: transaction-scoped, released by this transaction's COMMIT or ROLLBACK. SQLite: the
    # transaction holds the database's only write lock (BEGIN IMMEDIATE), nobody else can chain meanwhile.
    return dialect.serialise(session, CHAIN_LOCK_KEY, wait=wait)


def chain_pending(session: Session, *, wait: bool = True) -> int:
    """Give every committed (or own) event in intake the next ``seq`` and its link, in intake order.

    Returns how many were chained; 0 also when ``wait`` is false and another transaction holds the
    chain lock. Runs in the caller's transaction and keeps the lock until that transaction ends, so
    call it last and commit soon. Needs READ COMMITTED on PostgreSQL (the default): the tail is read
    by a statement that starts after the lock is granted, so it sees the previous holder's commit.
    """
    if not _lock_chain(session, wait):
        return 0
    table = AuditEvent.__table__
    # The tail and the waiting events in one round trip (both through an index), as the lock is held.
    rows = session.execute(union_all(
        select(table).where(table.c.seq == select(func.max(table.c.seq)).scalar_subquery()),
        select(table).where(table.c.seq.is_(None)),
    )).mappings().all()
    tail = next((row for row in rows if row["seq"] is not None), None)
    seq, prev = (tail["seq"], tail["hash"]) if tail is not None else (0, GENESIS)
    waiting = sorted((row for row in rows if row["seq"] is None), key=lambda row: row["id"])
    if not waiting:
        return 0
    links = []
    for row in waiting:
        seq += 1
        digest = link(prev, {**row, "seq": seq})
        links.append({"row_id": row["id"], "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    session.execute(
        update(table).where(table.c.id == bindparam("row_id"))
        .values(seq=bindparam("seq"), prev_hash=bindparam("prev_hash"), hash=bindparam("hash")),
        links,
    )
    # Keep this session's own event objects in step with the rows, without another flush.
    mine = {e.id: e for e in session.info.get(_UOW, {}).values() if e in session}
    for values in links:
        entry = mine.get(values["row_id"])
        if entry is not None:
            for name in ("seq", "prev_hash", "hash"):
                set_committed_value(entry, name, values[name])
    return len(links)


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
    table = AuditEvent.__table__
    unchained = session.scalar(select(func.count()).select_from(table).where(table.c.seq.is_(None))) or 0
    rows = session.execute(
        select(table).where(table.c.seq.is_not(None)).order_by(table.c.seq).execution_options(yield_per=2000)
    ).mappings()
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
    intake are chained first (unless a chaining is under way right now), so the answer is current."""
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
    if before is None and _has_unchained(ctx.session):  # the first page: bring the chain up to date
        chain_pending(ctx.session, wait=False)
    query = select(AuditEvent).where(AuditEvent.seq.is_not(None))
    if filters.person_ids is not None:
        query = query.where(AuditEvent.person_id.in_(list(filters.person_ids)))
    for column, value in ((AuditEvent.actor_id, filters.actor_id), (AuditEvent.institution_id, filters.institution_id),
                          (AuditEvent.purpose, filters.purpose), (AuditEvent.action, filters.action)):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.at < filters.until)
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    events = list(ctx.session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    return Page(events, events[-1].seq if more else None)


def _has_unchained(session: Session) -> bool:
    table = AuditEvent.__table__
    return session.execute(select(table.c.id).where(table.c.seq.is_(None)).limit(1)).first() is not None


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
                    if _has_unchained(session):
                        chain_pending(session, wait=False)
            except Exception:  # a database hiccup: the next round tries again
                log.warning("audit sweeper round failed", exc_info=True)


def start_sweeper(db, interval: float = 0.2) -> Sweeper:  # noqa: ANN001
    return Sweeper(db, interval).start()


def person_ids_for_card(ctx: Ctx, ehc_id: str) -> list[str]:
    """The master index ids whose events concern this card's holder (the holder and anyone merged
    into them, e.g. the temporary card of their emergency admission)."""
    from ..cards import service as cards  # imported here: cards -> mpi -> audit would be a cycle
    from ..mpi import service as mpi

    card = cards.get_card(ctx, ehc_id)
    return mpi.ids_of(ctx, mpi.resolve(ctx, card.person_id))


def access_log_for_person(ctx: Ctx, person_id: str, *, before: int | None = None, limit: int = 50) -> Page:
    """Who read or changed this person's data: what the resident sees (newest first, in pages)."""
    from ..mpi import service as mpi

    return search(ctx, Filters(person_ids=mpi.ids_of(ctx, mpi.resolve(ctx, person_id))), before=before, limit=limit)


def iter_events(ctx: Ctx, filters: Filters) -> Iterator[AuditEvent]:
    """Every matching event, newest first (the CLI's export)."""
    before = None
    while True:
        page = search(ctx, filters, before=before, limit=MAX_PAGE)
        yield from page.events
        if page.next_before is None:
            return
        before = page.next_before
