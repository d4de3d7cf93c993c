"""The records domain's queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..kit import dialect
from .models import BreakGlass, Consent, OwnEntry, RecordVersion


def by_digest(session: Session, digest: str) -> RecordVersion | None:
    return session.scalar(select(RecordVersion).where(RecordVersion.digest == digest))


def current(session: Session, resource_id: str) -> RecordVersion | None:
    return session.scalar(select(RecordVersion).where(RecordVersion.resource_id == resource_id,
                                                      RecordVersion.current.is_(True)))


def version(session: Session, resource_id: str, number: int) -> RecordVersion | None:
    return session.scalar(select(RecordVersion).where(RecordVersion.resource_id == resource_id,
                                                      RecordVersion.version == number))


def history(session: Session, resource_id: str) -> list[RecordVersion]:
    return list(session.scalars(select(RecordVersion).where(RecordVersion.resource_id == resource_id)
                                .order_by(RecordVersion.version.desc())))


def timeline(session: Session, person_ids: Sequence[str], *, types: Sequence[str] = (),
             institution_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
             limit: int | None = None) -> list[RecordVersion]:
    """Current versions of a person's resources, newest effective first."""
    query = select(RecordVersion).where(RecordVersion.person_id.in_(person_ids), RecordVersion.current.is_(True))
    if types:
        query = query.where(RecordVersion.resource_type.in_(types))
    if institution_id:
        query = query.where(RecordVersion.institution_id == institution_id)
    if since is not None:
        query = query.where(RecordVersion.effective_at >= since)
    if until is not None:
        query = query.where(RecordVersion.effective_at < until)
    query = query.order_by(RecordVersion.effective_at.desc(), RecordVersion.id.desc())
    return list(session.scalars(query.limit(limit) if limit else query))


def waiting_indexes(session: Session, pending_indexes: list[str]) -> set[str]:
    """Which of these numbers (blind indexes) records are waiting for."""
    found: set[str] = set()
    for among in dialect.each_in(session, RecordVersion.pending_index, pending_indexes):
        found.update(session.scalars(select(RecordVersion.pending_index).where(among, RecordVersion.person_id.is_(None))))
    return found


def attach_pending(session: Session, pending_index: str, person_id: str) -> int:
    result = session.execute(update(RecordVersion).where(RecordVersion.pending_index == pending_index,
                                                         RecordVersion.person_id.is_(None))
                             .values(person_id=person_id, pending_index=None))
    return result.rowcount or 0


def pending_count(session: Session, institution_id: str) -> int:
    return len(session.scalars(select(RecordVersion.id).where(RecordVersion.institution_id == institution_id,
                                                              RecordVersion.person_id.is_(None))).all())


def resource_ids_of(session: Session, person_id: str) -> list[str]:
    return list(session.scalars(select(RecordVersion.resource_id).where(RecordVersion.person_id == person_id)
                                .distinct()))


def move(session: Session, resource_ids: Sequence[str], from_person: str, to_person: str) -> None:
    session.execute(update(RecordVersion).where(RecordVersion.resource_id.in_(resource_ids),
                                                RecordVersion.person_id == from_person)
                    .values(person_id=to_person))


def consents_of(session: Session, person_ids: Sequence[str]) -> list[Consent]:
    return list(session.scalars(select(Consent).where(Consent.person_id.in_(person_ids))
                                .order_by(Consent.created_at.desc())))


def break_glass_of(session: Session, person_ids: Sequence[str]) -> list[BreakGlass]:
    return list(session.scalars(select(BreakGlass).where(BreakGlass.person_id.in_(person_ids))
                                .order_by(BreakGlass.at.desc())))


def recent_break_glass(session: Session, limit: int) -> list[BreakGlass]:
    return list(session.scalars(select(BreakGlass).order_by(BreakGlass.at.desc()).limit(limit)))


def published_any(session: Session, person_ids: Sequence[str], institution_id: str) -> bool:
    return session.scalar(select(RecordVersion.id).where(RecordVersion.person_id.in_(person_ids),
                                                         RecordVersion.institution_id == institution_id).limit(1)) is not None


def own_entries_of(session: Session, person_ids: Sequence[str]) -> list[OwnEntry]:
    return list(session.scalars(select(OwnEntry).where(OwnEntry.person_id.in_(person_ids))
                                .order_by(OwnEntry.created_at, OwnEntry.id)))


def versions_after(session: Session, after_id: int, limit: int) -> list[tuple]:
    """(id, recorded at, resource type, version, publisher, person) after ``after_id`` in id order:
    the statistics source. Never the sensitivity or the body."""
    return [tuple(row) for row in session.execute(
        select(RecordVersion.id, RecordVersion.recorded_at, RecordVersion.resource_type, RecordVersion.version,
               RecordVersion.institution_id, RecordVersion.person_id)
        .where(RecordVersion.id > after_id).order_by(RecordVersion.id).limit(limit))]


def first_encounters_after(session: Session, after_id: int, limit: int) -> list[tuple]:
    """(id, recorded at, effective at, publisher, person) of the first versions of Encounters after
    ``after_id`` in id order: the visits' statistics source."""
    return [tuple(row) for row in session.execute(
        select(RecordVersion.id, RecordVersion.recorded_at, RecordVersion.effective_at, RecordVersion.institution_id,
               RecordVersion.person_id)
        .where(RecordVersion.id > after_id, RecordVersion.resource_type == "Encounter", RecordVersion.version == 1)
        .order_by(RecordVersion.id).limit(limit))]
