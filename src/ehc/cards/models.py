from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
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
        """The status code national interfaces exchange (docs/codes.md); "6" is our code for lost/frozen."""
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
    # QR codes carry only the first 80 bits of the card id (docs/qr-format.md §5.2): no two cards may
    # share them. ``cards.service.fresh_card_id`` draws until the prefix is free; this index makes the
    # rule hold even for two creations racing with the same prefix (chance 2^-80 a pair).
    # The status is one of the statuses: a row with any other (a typo, a status of another system)
    # is refused by the database itself.
    __table_args__ = (
        Index("uq_cards_ehc_id_prefix", func.substr(text("ehc_id"), 1, 20), unique=True),
        CheckConstraint("status IN ({})".format(", ".join(f"'{s.value}'" for s in CardStatus)), name="status"),
    )

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


class ImportJob(Base):
    """One migration of a resident registry file (``ehc cards import``), resumable.

    Keyed by the SM3 digest of the file's content: the same bytes are the same job wherever the file
    sits or whenever it was touched, and different bytes can never resume a job they do not belong
    to (its ``rows_done`` counts records of *that* content). Every batch of rows commits together
    with the update of ``rows_done`` and the counters, so the job never claims rows that are not in
    the database, nor the other way round.
    """

    __tablename__ = "card_import_jobs"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SM3 of the file's bytes, hex
    file_name: Mapped[str] = mapped_column(String(255))  # base name only, for people to recognise it
    file_size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running | done
    rows_done: Mapped[int] = mapped_column(Integer, default=0)  # CSV records consumed, in file order
    created: Mapped[int] = mapped_column(Integer, default=0)
    already_registered: Mapped[int] = mapped_column(Integer, default=0)
    pending_review: Mapped[int] = mapped_column(Integer, default=0)  # of ``created``
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    operator: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ImportRejection(Base):
    """A row an import refused: where it is in the file and why. Never the document number in clear."""

    __tablename__ = "card_import_rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("card_import_jobs.id"), index=True)
    line: Mapped[int] = mapped_column(Integer)  # physical line of the file where the record starts (header = 1)
    document_type: Mapped[str | None] = mapped_column(String(8))
    document_masked: Mapped[str | None] = mapped_column(String(64))
    problem: Mapped[str] = mapped_column(String(48))  # the service's problem code, e.g. application_invalid
    code: Mapped[str] = mapped_column(String(64))  # the first field error's code, e.g. document_checksum_mismatch
    field: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
