"""What the online QR path stores: the dynamic codes already used, and every card use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, UniqueConstraint
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
    """One use of a card (a scan that the platform verified), with the national codes (docs/codes.md).

    On PostgreSQL the table is partitioned by China month of ``at`` (migration 0028, ``qr/partitions.py``),
    and its primary key there is (id, at), as a partitioned table's must hold its partition key; the ids
    come from one sequence all the same, so the model keeps ``id`` as the row's identity on both databases."""

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
    # The code that was scanned, for deduplicating offline uploads (docs/qr-format.md §9.1): the
    # issuing key id and the nonce (a dynamic code's random nonce, a static code's revocation id).
    key_id: Mapped[str | None] = mapped_column(String(7))
    nonce: Mapped[str | None] = mapped_column(String(16))
    offline: Mapped[bool] = mapped_column(Boolean, default=False)  # verified by a terminal, uploaded later
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)  # when the platform learnt of it
    # A dynamic code seen before at another terminal or online: recorded, and reported as a replay.
    replay: Mapped[bool] = mapped_column(Boolean, default=False)
    region_code: Mapped[str | None] = mapped_column(String(6), index=True)  # the institution's region (GB/T 2260)

    __table_args__ = (Index("ix_card_uses_key_nonce", "key_id", "nonce"),)


class Revocation(Base):
    """One change of the revocation list (docs/qr-format.md §12): a static code's revocation id
    added (card lost, cancelled, or an earlier issue after a reissue) or removed (card recovered).

    The row id is the list's serial: ``?since=N`` answers with the rows after N. Only the revocation
    id is kept, which reveals nothing of the card without the card-reference secret.
    """

    __tablename__ = "qr_revocations"

    serial: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    rid: Mapped[str] = mapped_column(String(16), index=True)  # hex
    action: Mapped[str] = mapped_column(String(6))  # add | remove
    reason: Mapped[str] = mapped_column(String(16))  # lost | cancelled | reissued | recovered
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CardPin(Base):
    """The second factor a holder sets for static codes (docs/qr-format.md §9.1): a PIN, kept only
    as a keyed, salted digest, with a failure counter that locks it after repeated wrong tries."""

    __tablename__ = "card_pins"

    ehc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(128))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
