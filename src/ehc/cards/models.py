from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow


class CardStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    REJECTED = "rejected"
    NORMAL = "normal"
    LOST = "lost"  # reported lost: frozen, its codes refused, until recovered or reissued
    CANCELLED = "cancelled"

    @property
    def national_code(self) -> str:
        """The status code national interfaces exchange (DOMAIN.md); "6" is our code for lost/frozen."""
        return _NATIONAL[self]


_NATIONAL = {
    CardStatus.CANCELLED: "0",
    CardStatus.NORMAL: "1",
    CardStatus.PENDING_REVIEW: "2",
    CardStatus.REJECTED: "3",
    CardStatus.LOST: "6",
}


class Card(Base):
    __tablename__ = "cards"

    ehc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Bumped by every reissue; QR codes carry it, so codes of an earlier issue stop working.
    sequence: Mapped[int] = mapped_column(Integer, default=1)
    temporary: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(4))
    institution_id: Mapped[str | None] = mapped_column(String(24), index=True)
    operator: Mapped[str | None] = mapped_column(String(64))
    verifier: Mapped[str | None] = mapped_column(String(40))  # which real-name verifier passed it
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class CardEvent(Base):
    """One step of a card's life: who did what, when, why, through which channel."""

    __tablename__ = "card_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ehc_id: Mapped[str] = mapped_column(ForeignKey("cards.ehc_id"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    institution_id: Mapped[str | None] = mapped_column(String(24))
    operator: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(4))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FamilyBinding(Base):
    """A guardian (card owner) acting for a family member: a child, an elderly parent."""

    __tablename__ = "family_bindings"
    __table_args__ = (UniqueConstraint("guardian_person_id", "member_person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guardian_person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    member_person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    relation: Mapped[str] = mapped_column(String(16))  # child | parent | spouse | grandchild | grandparent | other
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
