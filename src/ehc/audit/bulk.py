"""Bulk recording for registry migrations (``ehc cards import``): many events, chained as they go in.

The rules are those of :func:`ehc.audit.service.record_access` followed by the chaining of
:func:`ehc.audit.service.chain_pending`: one event per person for the purpose, by the acting party,
linked in intake order with :func:`ehc.audit.service.link` under the chain lock. Only the mechanics
differ, because a migration writes thousands of events per transaction: instead of inserting them
unchained and then updating each with its link (an UPDATE per row, which touches every index of the
table a second time), :func:`record_changes` takes the chain lock first (waiting for it, as
``chain_pending(wait=True)`` does), chains whatever already waits in intake, reads the tail, and
inserts the new events already linked (``COPY`` on PostgreSQL). The lock is held until the caller's
transaction ends: call this as the last write of the transaction and commit soon.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..kit.context import Actor
from .models import AuditEvent
from .service import GENESIS, chain_pending, check_purpose, link

_COLUMNS = ("at", "action", "purpose", "person_id", "actor_kind", "actor_id", "actor_role", "institution_id",
            "operator", "channel", "request_id", "seq", "prev_hash", "hash")


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def record_changes(connection: Connection, person_ids: Sequence[str], purpose: str, actor: Actor, *,
                   at: datetime, request_id: str | None = None) -> int:
    """Record that ``actor`` changed the personal data of each of ``person_ids`` (in this order) for
    ``purpose``, inside the caller's transaction, already chained. Returns how many were recorded.

    As with ``record_access``, a resident acting on their own data is not recorded.
    """
    check_purpose(purpose)
    subjects = [p for p in person_ids if not (actor.kind == "resident" and actor.id == p)]
    if not subjects:
        return 0
    table = AuditEvent.__table__
    with Session(bind=connection) as session:  # joins the caller's transaction, never ends it
        chain_pending(session, wait=True)  # takes the chain lock, links anyone's waiting events first
        tail = session.execute(
            select(table.c.seq, table.c.hash).where(table.c.seq == select(func.max(table.c.seq)).scalar_subquery())
        ).first()
    seq, prev = (tail.seq, tail.hash) if tail is not None else (0, GENESIS)
    common = {
        "at": at, "action": "change", "purpose": purpose, "actor_kind": actor.kind, "actor_id": actor.id,
        "actor_role": ",".join(sorted(actor.roles)) or None, "institution_id": actor.institution_id,
        "operator": actor.operator, "channel": actor.channel.value, "request_id": request_id,
    }
    rows = []
    for person_id in subjects:
        seq += 1
        row = {**common, "person_id": person_id, "seq": seq, "prev_hash": prev}
        row["hash"] = prev = link(prev, row)
        rows.append(row)
    if connection.dialect.name == "postgresql":
        payload = "".join("\t".join(_copy_value(row[c]) for c in _COLUMNS) + "\n" for row in rows).encode()
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY audit_events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            copy.write(payload)
    else:
        connection.execute(insert(table), rows)
    return len(rows)
