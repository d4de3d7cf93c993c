"""The audit trail's queries (the chaining's own query is in ``chain.py``, under the chain lock)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import AuditEvent

_TABLE = AuditEvent.__table__


def has_unchained(session: Session) -> bool:
    return session.execute(select(_TABLE.c.id).where(_TABLE.c.seq.is_(None)).limit(1)).first() is not None


def count_unchained(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(_TABLE).where(_TABLE.c.seq.is_(None))) or 0


def chained_rows(session: Session) -> Iterator[Any]:
    """Every chained event as a row mapping, in seq order, streamed (constant memory)."""
    return session.execute(
        select(_TABLE).where(_TABLE.c.seq.is_not(None)).order_by(_TABLE.c.seq).execution_options(yield_per=2000)
    ).mappings()


def chained_events(session: Session, *, person_ids: Sequence[str] | None = None, actor_id: str | None = None,
                   institution_id: str | None = None, purpose: str | None = None, action: str | None = None,
                   since: datetime | None = None, until: datetime | None = None, before: int | None = None,
                   limit: int) -> list[AuditEvent]:
    """Chained events matching every given filter, newest first (keyset: ``seq`` below ``before``)."""
    query = select(AuditEvent).where(AuditEvent.seq.is_not(None))
    if person_ids is not None:
        query = query.where(AuditEvent.person_id.in_(list(person_ids)))
    for column, value in ((AuditEvent.actor_id, actor_id), (AuditEvent.institution_id, institution_id),
                          (AuditEvent.purpose, purpose), (AuditEvent.action, action)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    return list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit)))
