"""The audit trail's hash chain: the canonical encoding of an event, the link hash, and the chaining
of events waiting in intake under the chain lock (``service.py`` explains how and why; ``bulk.py``
chains a migration's events as it inserts them, with the same rule)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, func, select, union_all, update
from sqlalchemy.orm import Session

from ..crypto import sm3
from ..kit import dialect
from .models import AuditEvent

GENESIS = "0" * 64  # prev_hash of seq 1
# The fields a link covers, in the canonical encoding (format version 1). See ``canonical``.
CHAINED_FIELDS = (
    "seq", "at", "action", "purpose", "person_id", "actor_kind", "actor_id", "actor_role",
    "institution_id", "operator", "channel", "request_id",
)
# One advisory lock key for the whole chain: the first 8 bytes of SM3("ehc.audit.chain"), signed.
CHAIN_LOCK_KEY = int.from_bytes(sm3(b"ehc.audit.chain")[:8], "big", signed=True)
_PURPOSE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
UNIT_OF_WORK = "ehc.audit.unit_of_work"  # Session.info key: {(person_id, purpose): the event written} of this transaction


def check_purpose(purpose: str) -> str:
    """A purpose is a dotted lower-case code (``card.lookup``), at most 40 characters."""
    if not isinstance(purpose, str) or len(purpose) > 40 or not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"audit purpose must be a dotted lower-case code like 'card.view', not {purpose!r}")
    return purpose


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
    # This session's own events just chained are final: a later access in it records a new event.
    recorded = session.info.get(UNIT_OF_WORK)
    if recorded:
        chained = {values["row_id"] for values in links}
        for key in [key for key, entry in recorded.items() if entry.id in chained]:
            del recorded[key]
    return len(links)
