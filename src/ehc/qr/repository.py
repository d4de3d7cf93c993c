"""The QR domain's queries: card uses and the revocation list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import CardUse, Revocation


def first_use_of_code(session: Session, key_id: str, nonce: str, *, institution_id: str | None = None,
                      terminal_id: str | None = None, at: datetime | None = None) -> CardUse | None:
    """The first use recorded with this (key id, nonce) (an index on the pair); with ``institution_id``
    and ``terminal_id``, the first at that terminal; with ``at``, the first at that moment."""
    query = select(CardUse).where(CardUse.key_id == key_id, CardUse.nonce == nonce)
    if institution_id is not None or terminal_id is not None:
        query = query.where(CardUse.institution_id == institution_id, CardUse.terminal_id == terminal_id)
    if at is not None:
        query = query.where(CardUse.at == at)
    return session.scalars(query.order_by(CardUse.id).limit(1)).first()


def revocation_serial(session: Session) -> int:
    """The latest serial of the revocation list (0 before the first entry)."""
    return session.scalar(select(func.max(Revocation.serial))) or 0


def revocation_changes(session: Session, since: int) -> dict[str, str]:
    """rid -> its last action after serial ``since`` (add or remove)."""
    rows = session.execute(select(Revocation.rid, Revocation.action).where(Revocation.serial > since)
                           .order_by(Revocation.serial))
    return {rid: action for rid, action in rows}


def last_revocation_action(session: Session, rid: str, *, at: datetime | None = None) -> str | None:
    """The last action (add or remove) on ``rid``, or on it as it stood at ``at``."""
    query = select(Revocation.action).where(Revocation.rid == rid)
    if at is not None:
        query = query.where(Revocation.at <= at)
    return session.scalar(query.order_by(Revocation.serial.desc()).limit(1))


def uses_after(session: Session, after_id: int, limit: int) -> list:
    """Card uses with an id above ``after_id``, in id order (the statistics pipeline's reading)."""
    return list(session.execute(
        select(CardUse.id, CardUse.at, CardUse.scene, CardUse.channel, CardUse.institution_id, CardUse.terminal_id,
               CardUse.region_code, CardUse.person_id, CardUse.replay)
        .where(CardUse.id > after_id).order_by(CardUse.id).limit(limit)))
