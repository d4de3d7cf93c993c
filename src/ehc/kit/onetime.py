"""One-time codes sent by SMS: one engine for every purpose that needs one.

Purposes: ``sign_in`` (a resident signs in with a code texted to their phone, ``accounts.residents``)
and ``second_factor`` (a printed QR code at a payment or report step, a code texted to the card
holder's phone, ``qr.second_factor``). Each purpose brings its :class:`Policy`: its lifetime, resend
interval, daily limit and tries (today the same numbers for both), and the HMAC context its codes'
digests are taken under. The domain decides what the subject is and computes its blind index (the
phone's for a sign-in, the card's for a second factor: different HMAC contexts, so the two never
meet), sends the text, and words its own refusals; the engine does the rest:

* a code is 6 digits from the system's CSPRNG; only ``HMAC-SM3(blind-index key, context ‖ row id:code)``
  is stored, so neither a database dump nor a code row copied to another subject yields a code;
* requesting a new code retires the subject's live one (``superseded``); a right code is ``used``
  once; a wrong one counts, and the last allowed wrong try ``burnt`` s it; past ``expires_at`` it is
  refused as expired;
* one request or check at a time per subject (:func:`serialise`), so the counts and limits are exact
  under concurrent requests.

The rows live in ``resident_otp_codes`` (the table's name from when only sign-in codes existed).
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base, UtcDateTime
from . import dialect, ids
from .clock import utcnow

CODE_DIGITS = 6

SIGN_IN = "sign_in"
SECOND_FACTOR = "second_factor"

Blind = Callable[[str, str], str]  # ``Vault.blind``: (context, value) -> hex digest


class OneTimeCode(Base):
    """A code sent by SMS. Only a keyed digest of the code is stored (HMAC-SM3 over the row id and the
    code), and the subject (a phone, a card) only as its blind index."""

    __tablename__ = "resident_otp_codes"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # sign_in | second_factor
    subject_index: Mapped[str] = mapped_column(String(64), index=True)
    code_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="live")  # live | used | burnt | superseded
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # wrong codes tried against this one
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


@dataclass(frozen=True)
class Policy:
    purpose: str
    digest_context: str  # the HMAC context of the codes' digests
    lifetime: timedelta  # how long a code is valid
    resend_interval: timedelta  # at most one code per subject this often
    daily_window: timedelta
    daily_limit: int  # codes per subject within daily_window
    max_attempts: int  # wrong tries that burn a code


@dataclass(frozen=True)
class Refusal:
    """Why no code may be sent now: ``too_soon`` (within the resend interval) or ``daily_limit``."""

    reason: Literal["too_soon", "daily_limit"]
    retry_after: int  # seconds


State = Literal["missing", "live", "used", "superseded", "burnt", "expired"]


def serialise(session: Session, subject_index: str) -> None:
    """One code request or check at a time per subject, until the transaction ends (kit.dialect)."""
    dialect.serialise(session, int(subject_index[:15], 16))


def allowance(session: Session, policy: Policy, subject_index: str, now: datetime) -> Refusal | None:
    """None when a code may be sent to the subject now; else why not and for how long."""
    recent = session.scalars(
        select(OneTimeCode.created_at)
        .where(OneTimeCode.subject_index == subject_index, OneTimeCode.created_at > now - policy.daily_window)
        .order_by(OneTimeCode.created_at.desc())
    ).all()
    if recent and recent[0] > now - policy.resend_interval:
        return Refusal("too_soon", seconds(recent[0] + policy.resend_interval - now))
    if len(recent) >= policy.daily_limit:
        return Refusal("daily_limit", seconds(recent[policy.daily_limit - 1] + policy.daily_window - now))
    return None


def issue(session: Session, blind: Blind, policy: Policy, subject_index: str, now: datetime) -> tuple[str, OneTimeCode]:
    """Retire the subject's live code and store a fresh one; the code (to text) and its row."""
    session.execute(
        update(OneTimeCode).where(OneTimeCode.subject_index == subject_index, OneTimeCode.status == "live")
        .values(status="superseded")
    )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row_id = ids.new_id()
    row = OneTimeCode(id=row_id, purpose=policy.purpose, subject_index=subject_index,
                      code_digest=_digest(blind, policy, row_id, code), status="live", attempts=0,
                      expires_at=now + policy.lifetime, created_at=now)
    session.add(row)
    session.flush()
    return code, row


def latest(session: Session, subject_index: str) -> OneTimeCode | None:
    """The subject's newest code, whatever its state."""
    return session.scalars(
        select(OneTimeCode).where(OneTimeCode.subject_index == subject_index)
        .order_by(OneTimeCode.created_at.desc(), OneTimeCode.id).limit(1)
    ).first()


def state(row: OneTimeCode | None, now: datetime) -> State:
    if row is None:
        return "missing"
    if row.status != "live":
        return row.status  # type: ignore[return-value]
    return "expired" if row.expires_at <= now else "live"


def matches(blind: Blind, policy: Policy, row: OneTimeCode, code: object) -> bool:
    """Whether ``code`` (as typed: surrounding blanks ignored) is the row's code. Counts nothing."""
    code = code.strip() if isinstance(code, str) else ""
    return (len(code) == CODE_DIGITS and code.isdigit()
            and hmac.compare_digest(row.code_digest, _digest(blind, policy, row.id, code)))


def use(row: OneTimeCode) -> None:
    row.status = "used"


def count_wrong(policy: Policy, row: OneTimeCode) -> int:
    """Count a wrong try against the row, burning it at the last allowed one; the tries left."""
    row.attempts += 1
    if row.attempts >= policy.max_attempts:
        row.status = "burnt"
    return policy.max_attempts - row.attempts


def seconds(delta: timedelta) -> int:
    """A wait in whole seconds, at least one (for ``retry_after``)."""
    return max(1, math.ceil(delta.total_seconds()))


def _digest(blind: Blind, policy: Policy, row_id: str, code: str) -> str:
    return blind(policy.digest_context, f"{row_id}:{code}")
