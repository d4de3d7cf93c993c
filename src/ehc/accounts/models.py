from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow


class StaffAccount(Base):
    __tablename__ = "staff_accounts"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    role: Mapped[str] = mapped_column(String(32))
    institution_id: Mapped[str | None] = mapped_column(String(24), index=True)
    region_code: Mapped[str | None] = mapped_column(String(6))  # for health-commission roles
    # The department of the institution the member works in (a code of institutions' departments), if
    # any: department-level consent grants for health records admit only that department's staff.
    department_code: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Wrong passwords since the last sign-in, from any source; told to the owner at the next one.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # What the owner was told at their latest sign-in (the staff home shows it for the shift).
    failures_before_sign_in: Mapped[int] = mapped_column(Integer, default=0)
    failure_last_before_sign_in: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # While many sources guess at once, every source waits until then between tries (a slow-down).
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class StaffSignInFailures(Base):
    """Wrong passwords for one account from one source (a blinded client address), since that
    source last signed in. The source alone is slowed down: whoever guesses from elsewhere cannot
    lock the owner out of their own workstation."""

    __tablename__ = "staff_sign_in_failures"

    account_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    source_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    wait_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_failed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AccessToken(Base):
    """A bearer token. Only its SM3 digest is stored: a database dump yields no usable token."""

    __tablename__ = "access_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(12))  # staff | resident
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ResidentAccount(Base):
    """A resident's sign-in: the person (master index id) and the phone they sign in with.

    The phone is held only as its blind index (the person's record keeps it sealed). One account per
    person; several accounts may share a phone (a household), see ``residents.py`` for who is who.
    The password is optional (argon2id), set after a sign-in with a one-time code.
    """

    __tablename__ = "resident_accounts"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), unique=True)
    phone_index: Mapped[str] = mapped_column(String(64), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SmsOutboxMessage(Base):
    """The development SMS sender's outbox (``EHC_SMS_SENDER=outbox``). The phone is sealed; the text
    holds the code in clear, which is why production uses a gateway adapter and never this table."""

    __tablename__ = "sms_outbox"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    phone_index: Mapped[str] = mapped_column(String(64), index=True)
    phone_sealed: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
