"""The QR domain's queries: card uses, used dynamic codes and the revocation list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Insert, Select, bindparam, func, insert, null, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from ..kit import dialect
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


def uses_between(session: Session, person_ids: list[str], since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
    """(person, institution, moment) of the verified uses (replays excluded) by these people in [since, until)."""
    found: list[tuple[str, str, datetime]] = []
    for among in dialect.each_in(session, CardUse.person_id, person_ids):
        found.extend(tuple(row) for row in session.execute(
            select(CardUse.person_id, CardUse.institution_id, CardUse.at)
            .where(among, CardUse.at >= since, CardUse.at < until, CardUse.replay.is_(False))))
    return found


USE_COLUMNS = ("ehc_id", "person_id", "scene", "channel", "institution_id", "terminal_id", "department", "code_type",
               "actor_kind", "actor_id", "operator", "at", "recorded_at", "key_id", "nonce", "offline", "replay")


class ClaimAndRecord:
    """One statement (PostgreSQL): claim a dynamic code (``code_key_id``, ``code_nonce``,
    ``code_expires_at``) in ``qr_used_codes``; only if this claimed it, record its use (``use_<column>``
    for each of ``USE_COLUMNS``, and the region of the use's institution, computed in the statement);
    and only with that use, an audit event (the parameters of ``audit``'s insert). The claim is the
    same ``INSERT ... ON CONFLICT DO NOTHING`` as ``kit.claims``: a concurrent claim of the same code
    waits for this transaction, then gets no row, and writes nothing.

    Built once, on first use (a statement is cheap to run and costly to build); ``region_code`` and
    ``audit`` are the other domains' parts: the region of an institution id, the audit event's insert
    from a CTE of rows."""

    def __init__(self, region_code: Callable[[ColumnElement], ColumnElement],
                 audit: Callable[[FromClause], Insert]) -> None:
        self._region_code, self._audit = region_code, audit
        self._statements: tuple[Select, Select] | None = None

    def _build(self) -> tuple[Select, Select]:
        used = UsedCode.__table__
        claim = (pg_insert(used).values({name: bindparam(f"code_{name}", type_=used.c[name].type)
                                         for name in ("key_id", "nonce", "expires_at")})
                 .on_conflict_do_nothing(index_elements=["key_id", "nonce"]).returning(used.c.id).cte("claim"))
        uses = CardUse.__table__
        row = select(*(bindparam(f"use_{name}", type_=uses.c[name].type) for name in USE_COLUMNS),
                     self._region_code(bindparam("use_region_of", type_=uses.c.institution_id.type)))
        recorded = (insert(uses).from_select([*USE_COLUMNS, "region_code"], row.select_from(claim))
                    .returning(uses.c.id, uses.c.region_code).cte("recorded"))
        audited = self._audit(recorded).cte("audited")
        with_event = (select(recorded.c.id, recorded.c.region_code, audited.c.id)
                      .select_from(recorded.join(audited, true())))
        return with_event, select(recorded.c.id, recorded.c.region_code, null())

    def __call__(self, session: Session, code: dict, use: dict,
                 audit: dict | None) -> tuple[int, str | None, int | None] | None:
        """(use id, its region code, audit event id or None without ``audit``), or None when the code
        was used already (nothing is written then)."""
        if self._statements is None:
            self._statements = self._build()
        with_event, without = self._statements
        params = {**{f"code_{name}": value for name, value in code.items()},
                  **{f"use_{name}": use[name] for name in USE_COLUMNS}, "use_region_of": use["institution_id"],
                  **(audit or {})}
        found = session.execute(with_event if audit is not None else without, params).first()
        return None if found is None else (found[0], found[1], found[2])
