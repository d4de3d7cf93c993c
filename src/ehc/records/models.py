"""What the records domain stores: every version of every published resource, the resident's consent
grants, and the break-glass reads.

A resource is stored with the person's random master-index id (``person_id``), never a name or a
document: the subject and any contained Patient are removed on the way in, and the body is sealed
(SM4-GCM, bound to the resource id and version). A resource whose subject is a hospital number the
master index does not know yet waits with ``person_id`` empty and the number's blind index in
``pending_index``, and attaches when the number is bound (``service.attach_pending``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow

# BigInteger on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" auto-increments.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class RecordVersion(Base):
    """One version of one FHIR resource (``resource_id`` is its logical id, ``version`` its versionId)."""

    __tablename__ = "records_versions"
    __table_args__ = (
        UniqueConstraint("resource_id", "version", name="uq_records_versions_resource_version"),
        UniqueConstraint("digest", name="uq_records_versions_digest"),
        Index("ix_records_versions_person_current", "person_id", "current", "effective_at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    resource_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    resource_type: Mapped[str] = mapped_column(String(32))
    institution_id: Mapped[str] = mapped_column(String(24), index=True)  # the publisher
    person_id: Mapped[str | None] = mapped_column(String(32))  # None while the subject waits in the queue
    pending_index: Mapped[str | None] = mapped_column(String(64), index=True)  # blind index of the subject's number
    sensitivity: Mapped[str | None] = mapped_column(String(16))  # mental | reproductive | infectious
    effective_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    replaces: Mapped[str | None] = mapped_column(String(32))  # a DocumentReference's predecessor
    digest: Mapped[str] = mapped_column(String(64))  # keyed digest of what was sent: a retry is stored once
    size: Mapped[int] = mapped_column(Integer)
    body_sealed: Mapped[str] = mapped_column(Text)


class Consent(Base):
    """A resident's choice about an institution: allow (chosen categories, a purpose, a period) or deny."""

    __tablename__ = "records_consents"
    __table_args__ = (CheckConstraint("effect IN ('allow', 'deny')", name="effect"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    effect: Mapped[str] = mapped_column(String(5))
    institution_id: Mapped[str] = mapped_column(String(24))
    department: Mapped[str | None] = mapped_column(String(8))
    categories: Mapped[str] = mapped_column(String(300))  # comma-separated; "all" = every non-sensitive one
    purpose: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class BreakGlass(Base):
    """An emergency read without consent: who, where, when and why (the reason sealed: it may name people)."""

    __tablename__ = "records_break_glass"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    institution_id: Mapped[str | None] = mapped_column(String(24))
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    reason_sealed: Mapped[str] = mapped_column(Text)


class OwnEntry(Base):
    """An item the resident adds to their own basic health record (居民健康档案首页): a blood type, an
    allergy, a condition, an operation or a family-history item. Only the kind and the time stay in
    clear; what it says (it may name an illness or a relative) is sealed, bound to the entry's id."""

    __tablename__ = "records_own_entries"
    __table_args__ = (CheckConstraint("kind IN ('blood_type', 'allergy', 'condition', 'operation', 'family_history')",
                                      name="kind"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    body_sealed: Mapped[str] = mapped_column(Text)
