"""What the online QR path stores: the dynamic codes already used, and every card use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow

# BigInteger on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" auto-increments.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class UsedCode(Base):
    """A dynamic code verified online: (key id, nonce) is single use (docs/qr-format.md §9 step 11).

    A row may be deleted once ``expires_at`` (+ skew) has passed: the code is refused as expired then.
    """

    __tablename__ = "qr_used_codes"
    __table_args__ = (UniqueConstraint("key_id", "nonce", name="uq_qr_used_codes_key_nonce"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(7))
    nonce: Mapped[str] = mapped_column(String(16))  # hex
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class CardUse(Base):
    """One use of a card (a scan that the platform verified), with the national codes (DOMAIN.md)."""

    __tablename__ = "card_uses"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    ehc_id: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    scene: Mapped[str] = mapped_column(String(7))  # care step code
    channel: Mapped[str] = mapped_column(String(4))
    institution_id: Mapped[str | None] = mapped_column(String(24), index=True)
    terminal_id: Mapped[str | None] = mapped_column(String(32))
    department: Mapped[str | None] = mapped_column(String(8))
    code_type: Mapped[int] = mapped_column(Integer)  # 0 dynamic, 1 static
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    operator: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
