"""The QR domain's queries: card uses, used dynamic codes and the revocation list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Insert, bindparam, func, insert, null, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from .models import CardUse, Revocation, UsedCode


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


def claim_and_record(session: Session, code: dict, use: dict, region_code: ColumnElement,
                     audit: Callable[[FromClause], Insert | None]) -> tuple[int, str | None, int | None] | None:
    """One statement (PostgreSQL): claim the dynamic code ``code`` (key id, nonce, expiry) in
    ``qr_used_codes``; only if this claimed it, record the use ``use`` (``card_uses`` columns, with
    ``region_code`` computed in the statement), and only with that use, the audit event ``audit``
    builds from it. Returns (use id, its region code, audit event id or None), or None when the code was used already
    (nothing is written then). The claim is the same ``INSERT ... ON CONFLICT DO NOTHING`` as
    ``kit.claims``: a concurrent claim of the same code waits for this transaction, then gets no row."""
    used = UsedCode.__table__
    claim = (pg_insert(used).values({name: bindparam(f"code_{name}", value, type_=used.c[name].type)
                                     for name, value in code.items()})
             .on_conflict_do_nothing(index_elements=["key_id", "nonce"]).returning(used.c.id).cte("claim"))
    uses = CardUse.__table__
    row = select(*(bindparam(f"use_{name}", value, type_=uses.c[name].type) for name, value in use.items()),
                 region_code)
    recorded = (insert(uses).from_select([*use, "region_code"], row.select_from(claim))
                .returning(uses.c.id, uses.c.region_code).cte("recorded"))
    event = audit(recorded)
    if event is None:
        query = select(recorded.c.id, recorded.c.region_code, null())
    else:
        event = event.cte("audited")
        query = select(recorded.c.id, recorded.c.region_code, event.c.id).select_from(recorded.join(event, true()))
    found = session.execute(query).first()
    return None if found is None else (found[0], found[1], found[2])
