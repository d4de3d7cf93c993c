"""Institution apps, their registered SM2 public keys, and the replay store of used nonces."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # final: a revoked key is treated as compromised and never comes back


class InstitutionApp(Base):
    """A hospital system of one institution (its HIS, a kiosk fleet's back end, ...)."""

    __tablename__ = "institution_apps"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the app id, 16 lower-case hex
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AppKey(Base):
    """An SM2 public key an app signs with. The platform never sees the private key.

    The key id is the first 16 hex characters of the key's fingerprint (SM3 of the uncompressed
    point), so an integrator can tell which key is meant from the public key alone.
    """

    __tablename__ = "app_keys"

    app_id: Mapped[str] = mapped_column(ForeignKey("institution_apps.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # one key, one app
    public_key_pem: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default=KeyStatus.ACTIVE.value)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class KeysGeneration(Base):
    """One row: a token that every change of an app or of its keys replaces, in the change's own
    transaction. A process caches apps' keys only as read after it saw the current token, so a
    change is seen by every process from its next request on (``apps.service``, ``apps.replay``)."""

    __tablename__ = "app_keys_generation"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    token: Mapped[str] = mapped_column(String(32))


class UsedNonce(Base):
    """A nonce of an accepted signed request, kept while a request carrying it could still be
    accepted (its timestamp within the skew window). The primary key is what stops a replay, also
    between two copies of a request racing each other: only one insert can win."""

    __tablename__ = "app_nonces"

    app_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
