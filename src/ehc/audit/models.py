"""The audit trail's one table: an append-only, hash-chained log of who read or changed whose data."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime

# BigInteger on PostgreSQL, but a plain INTEGER on SQLite, where only "INTEGER PRIMARY KEY" is the
# rowid that autoincrements.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    """One access to one resident's personal data, by anyone but the resident.

    Written in two steps (see ``service``): the request's transaction inserts the event with
    ``seq``, ``prev_hash`` and ``hash`` empty (lock-free, like any other row), and the same
    transaction *chains* it just before it commits: under the chain lock it takes the next ``seq``
    and links ``hash = SM3(prev_hash || canonical event)``. ``id`` is only the intake order; the
    chain is ``seq`` 1, 2, 3, ... with no gaps. Nothing here is personal data: ids, codes, times.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        # Events waiting to be chained: the chainer's work list, empty almost all the time.
        Index("ix_audit_events_unchained", "id", postgresql_where=text("seq IS NULL"),
              sqlite_where=text("seq IS NULL")),
        Index("ix_audit_events_person_seq", "person_id", "seq"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    action: Mapped[str] = mapped_column(String(8))  # read | change
    purpose: Mapped[str] = mapped_column(String(40), index=True)  # e.g. card.lookup
    person_id: Mapped[str] = mapped_column(String(32))  # master index id of the resident
    actor_kind: Mapped[str] = mapped_column(String(12))  # staff | machine | system | anonymous | resident
    actor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(64))  # the staff role(s), comma-separated
    institution_id: Mapped[str | None] = mapped_column(String(24), index=True)
    operator: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(4))  # card-use channel code (kit.codes.Channel)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))  # hex SM3; 64 zeros before seq 1
    hash: Mapped[str | None] = mapped_column(String(64))
