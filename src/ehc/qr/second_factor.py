"""The second factor for static codes (docs/qr-format.md §9.1): a PIN the holder sets, or a one-time
code texted to the phone on file.

A static code is a piece of paper: whoever holds a copy holds the code. So a care step that reads
records or moves money (``codes.SECOND_FACTOR_SCENES``) with a static code needs one more proof,
checked online: ``require`` is called by ``service.verify``. Dynamic codes never need it (drawing
one needs a signed-in phone).

PIN
    Six digits, set by the holder (or a guardian for a family member's card) and changed with the
    current one; trivial PINs are refused. Stored in ``card_pins`` as an argon2id hash (a fresh salt
    per PIN, the library's recommended cost) of ``HMAC-SM3(index key, "qr.card-pin" ‖ ehc_id:pin)``:

    * keyed with a platform secret (the key store's non-rotating ``index`` key): a copy of the
      database alone gives nothing to try the 10^6 PINs against;
    * the card id is inside the keyed input: a row copied onto another card does not verify;
    * argon2id on top: with the key store stolen as well, every guess still costs a slow hash.

    Five wrong PINs in a row lock it for 15 minutes (``second_factor_locked``, 429, Retry-After);
    the count survives the refused request. Window staff clear a forgotten PIN for a holder who
    proves who they are, with a reason that goes into the card's history.

SMS code
    Six digits, valid 5 minutes, single use, sent to the phone on file of the card's holder (for a
    child registered with a guardian's phone, the guardian's). At most one a minute and 10 a day per
    card; five wrong tries burn the code. Rows live in ``resident_otp_codes``, the sign-in codes'
    table, with the same columns meaning the same things, kept apart by their keys: the row's
    ``phone_index`` is ``blind("qr.second-factor.card", ehc_id)`` (a sign-in row holds
    ``blind("phone", phone)``; the two HMAC contexts never meet), and ``code_digest`` is
    ``blind("qr.second-factor.sms", row id:code)``. A sign-in code never passes as a second
    factor, nor the other way round, and nothing of the phone is stored.

Failures that count are committed before the error is raised: the request's transaction is rolled
back on error, and the count must survive it.
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from ..accounts import sms
from ..accounts.models import OneTimeCode
from ..audit import service as audit
from ..cards import service as cards
from ..cards.service import Card
from ..identity import mask_phone
from ..kit import ids
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Conflict, Invalid, Problem, field_error
from ..mpi import service as mpi
from . import codec
from .codes import online_only
from .models import CardPin

PIN_LENGTH = 6
MAX_PIN_FAILURES = 5
PIN_LOCKOUT = timedelta(minutes=15)
SMS_CODE_LIFETIME = timedelta(minutes=5)
SMS_RESEND_INTERVAL = timedelta(seconds=60)
SMS_DAILY_WINDOW = timedelta(hours=24)
SMS_DAILY_LIMIT = 10
MAX_SMS_ATTEMPTS = 5
SMS_TEXT = ("【电子健康卡】您的健康卡纸质二维码正在用于缴费或查看报告，验证码{code}，5分钟内有效。"
            "如非本人操作，请勿告知他人，并及时挂失。")

PIN_CONTEXT = "qr.card-pin"
SMS_INDEX_CONTEXT = "qr.second-factor.card"
SMS_DIGEST_CONTEXT = "qr.second-factor.sms"
PIN_PURPOSE = "card.pin"
SMS_PURPOSE = "card.second_factor"

_hasher = PasswordHasher()  # argon2id, the library's recommended parameters (a hash records its own)


# -- problems --------------------------------------------------------------------------------------

class SecondFactorRequired(Problem):
    """428 Precondition Required (RFC 6585): the request is fine, it lacks one more proof; clients
    ask the holder for a PIN or an SMS code and send the same request again with it."""

    status = 428
    code = "second_factor_required"
    title = "Second factor required"


class SecondFactorInvalid(Problem):
    status = 422
    code = "second_factor_invalid"
    title = "Second factor wrong"


class SecondFactorLocked(Problem):
    status = 429
    code = "second_factor_locked"
    title = "Second factor locked"


class SecondFactorUnavailable(Conflict):
    code = "second_factor_unavailable"


class SmsRateLimited(Problem):
    status = 429
    code = "second_factor_sms_rate_limited"
    title = "Too many codes"


@dataclass(frozen=True)
class Proof:
    """What the caller sends with a verification: exactly one of the two."""

    pin: str | None = None
    sms_code: str | None = None


def needed(code_type: codec.CodeType, scene: str) -> bool:
    """Whether a verification needs a second factor: a static code at a step in SECOND_FACTOR_SCENES."""
    return online_only(code_type, scene)


def require(ctx: Ctx, card: Card, code_type: codec.CodeType, scene: str, proof: Proof | None) -> None:
    """The check ``service.verify`` runs once the card is known to be normal (§9.1)."""
    if not needed(code_type, scene):
        return
    if proof is None or (proof.pin is None and proof.sms_code is None):
        methods = (["pin"] if _pin_row(ctx.session, card.ehc_id) is not None else []) + ["sms_code"]
        raise SecondFactorRequired(
            "A printed (static) code needs a second factor for this step: the card's PIN, or a code "
            "sent to the holder's phone (POST /api/v1/qr/second-factor/sms).", methods=methods)
    if proof.pin is not None and proof.sms_code is not None:
        raise Invalid("Give either a PIN or an SMS code, not both.", code="second_factor_ambiguous",
                      errors=[field_error("second_factor", "second_factor_ambiguous", "One of pin, sms_code.")])
    if proof.pin is not None:
        check_pin(ctx, card, proof.pin)
    else:
        check_sms_code(ctx, card, proof.sms_code)


# -- the PIN ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PinStatus:
    set: bool
    locked_until: datetime | None


def _pin_row(session: Session, ehc_id: str, *, for_update: bool = False) -> CardPin | None:
    query = select(CardPin).where(CardPin.ehc_id == ehc_id)
    return session.scalar(query.with_for_update() if for_update else query)


def _keyed(ctx: Ctx, ehc_id: str, pin: str) -> str:
    return ctx.vault.blind(PIN_CONTEXT, f"{ehc_id}:{pin}")


def pin_status(ctx: Ctx, card: Card) -> PinStatus:
    row = _pin_row(ctx.session, card.ehc_id)
    locked = row.locked_until if row is not None and row.locked_until and row.locked_until > utcnow() else None
    return PinStatus(set=row is not None, locked_until=locked)


def weak_pin_reason(pin: str) -> str | None:
    """Why a well-formed PIN is too easy to guess, or None: one digit repeated (000000), a run up or
    down (123456, 987654, 890123), a repeated pair or triple (121212, 123123), pairs (112233)."""
    digits = [int(d) for d in pin]
    steps = {(b - a) % 10 for a, b in pairwise(digits)}
    if len(set(digits)) == 1:
        return "one digit repeated"
    if steps in ({1}, {9}):
        return "digits in a row"
    if pin == pin[:2] * 3 or pin == pin[:3] * 2:
        return "a repeated pattern"
    if all(pin[i] == pin[i + 1] for i in range(0, PIN_LENGTH, 2)):
        return "doubled digits"
    return None


def _check_new_pin(pin: str) -> None:
    if not (isinstance(pin, str) and len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()):
        raise Invalid("A PIN is 6 digits.", code="pin_invalid",
                      errors=[field_error("pin", "pin_invalid", "A PIN is 6 digits.")])
    reason = weak_pin_reason(pin)
    if reason is not None:
        message = f"This PIN is too easy to guess ({reason}); choose another."
        raise Invalid(message, code="pin_too_simple", errors=[field_error("pin", "pin_too_simple", message)])


def set_pin(ctx: Ctx, card: Card, pin: str, *, current_pin: str | None = None) -> bool:
    """Set the card's PIN, or change it (the current PIN is needed then). True if one was set before."""
    row = _pin_row(ctx.session, card.ehc_id, for_update=True)
    if row is not None:
        if not current_pin:
            raise Invalid("Give the current PIN to change it.", code="current_pin_required",
                          errors=[field_error("current_pin", "current_pin_required", "The PIN set now.")])
        _verify_pin(ctx, row, current_pin, Invalid(
            "The current PIN is wrong.", code="current_pin_wrong",
            errors=[field_error("current_pin", "current_pin_wrong", "The current PIN is wrong.")]))
    _check_new_pin(pin)
    digest = _hasher.hash(_keyed(ctx, card.ehc_id, pin))
    if row is None:
        ctx.session.add(CardPin(ehc_id=card.ehc_id, digest=digest, failures=0, locked_until=None))
    else:
        row.digest, row.failures, row.locked_until = digest, 0, None
    ctx.session.flush()
    audit.record_access(ctx, card.person_id, "change", PIN_PURPOSE)
    return row is not None


def clear_pin(ctx: Ctx, card: Card, reason: str | None) -> bool:
    """Window staff remove a forgotten PIN once the holder has proved who they are. True if there was one."""
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("Say why the PIN is cleared (e.g. how the holder proved their identity).",
                      code="reason_required", errors=[field_error("reason", "reason_required", "Say why.")])
    row = _pin_row(ctx.session, card.ehc_id, for_update=True)
    if row is None:
        return False
    ctx.session.delete(row)
    ctx.session.flush()
    cards.note(ctx, card, "pin_cleared", reason)
    return True


def check_pin(ctx: Ctx, card: Card, pin: str) -> None:
    row = _pin_row(ctx.session, card.ehc_id, for_update=True)
    if row is None:
        raise SecondFactorUnavailable("No PIN is set for this card; use a code sent to the holder's phone.",
                                      method="pin")
    _verify_pin(ctx, row, pin, None)


def _verify_pin(ctx: Ctx, row: CardPin, pin: str, wrong: Problem | None) -> None:
    """Check ``pin`` against the row, counting a wrong one (committed) and locking after five."""
    now = utcnow()
    if row.locked_until and row.locked_until > now:
        raise SecondFactorLocked("Too many wrong PINs; try again later or use a code sent to the holder's phone.",
                                 retry_after=_seconds(row.locked_until - now))
    candidate = pin if isinstance(pin, str) else ""
    if _matches(row.digest, _keyed(ctx, row.ehc_id, candidate)):
        if _hasher.check_needs_rehash(row.digest):
            row.digest = _hasher.hash(_keyed(ctx, row.ehc_id, candidate))
        row.failures, row.locked_until = 0, None
        return
    row.failures += 1
    if row.failures >= MAX_PIN_FAILURES:
        row.failures, row.locked_until = 0, now + PIN_LOCKOUT
        _keep_and_raise(ctx.session, SecondFactorLocked(
            "Too many wrong PINs: the PIN is locked for 15 minutes.", retry_after=_seconds(PIN_LOCKOUT)))
    problem = wrong or SecondFactorInvalid("The PIN is wrong.")
    problem.extra["attempts_left"] = MAX_PIN_FAILURES - row.failures
    _keep_and_raise(ctx.session, problem)


def _matches(digest: str, keyed: str) -> bool:
    try:
        return _hasher.verify(digest, keyed)
    except (VerificationError, InvalidHashError):
        return False


# -- the SMS code ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmsSent:
    masked_phone: str
    expires_at: datetime
    resend_after: int


def card_of_static_code(ctx: Ctx, text_: str, *, now: datetime | None = None) -> Card:
    """The normal card a static code stands for: §9 steps 1-10, as ``service.verify`` runs them,
    without recording a use. A dynamic code needs no second factor: refused."""
    from . import service  # service imports this module; the code checks are its own

    if codec.split(text_.strip() if isinstance(text_, str) else text_).code.payload.type is not codec.CodeType.STATIC:
        raise Invalid("A dynamic code needs no second factor.", code="second_factor_not_needed")
    return service.open_code(ctx, text_, now=now or utcnow())[1]


def send_sms_code(ctx: Ctx, card: Card) -> SmsSent:
    """Text a fresh one-time code to the phone on file of the card's holder."""
    index = ctx.vault.blind(SMS_INDEX_CONTEXT, card.ehc_id)
    _serialise(ctx.session, index)
    now = utcnow()
    _sms_allowance(ctx.session, index, now)
    holder = mpi.resolve(ctx, card.person_id)
    phone = mpi.demographics(ctx, holder, purpose=SMS_PURPOSE).phone
    if not phone:
        raise SecondFactorUnavailable("The holder has no phone on file; use the card's PIN.", method="sms_code")
    ctx.session.execute(update(OneTimeCode).where(OneTimeCode.phone_index == index, OneTimeCode.status == "live")
                        .values(status="superseded"))
    code = f"{secrets.randbelow(10**6):06d}"
    row_id = ids.new_id()
    expires = now + SMS_CODE_LIFETIME
    ctx.session.add(OneTimeCode(id=row_id, phone_index=index, code_digest=_sms_digest(ctx, row_id, code),
                                status="live", attempts=0, expires_at=expires, created_at=now))
    ctx.session.flush()
    sms.get_sender(ctx).send(phone, SMS_TEXT.format(code=code))
    return SmsSent(mask_phone(phone), expires, int(SMS_RESEND_INTERVAL.total_seconds()))


def _sms_allowance(session: Session, index: str, now: datetime) -> None:
    recent = session.scalars(
        select(OneTimeCode.created_at).where(OneTimeCode.phone_index == index,
                                             OneTimeCode.created_at > now - SMS_DAILY_WINDOW)
        .order_by(OneTimeCode.created_at.desc())).all()
    if recent and recent[0] > now - SMS_RESEND_INTERVAL:
        wait = _seconds(recent[0] + SMS_RESEND_INTERVAL - now)
        raise SmsRateLimited(f"A code was sent for this card less than a minute ago; ask again in {wait} s.",
                             retry_after=wait)
    if len(recent) >= SMS_DAILY_LIMIT:
        raise SmsRateLimited(f"At most {SMS_DAILY_LIMIT} codes a day are sent for one card.",
                             retry_after=_seconds(recent[SMS_DAILY_LIMIT - 1] + SMS_DAILY_WINDOW - now))


def check_sms_code(ctx: Ctx, card: Card, code: str) -> None:
    index = ctx.vault.blind(SMS_INDEX_CONTEXT, card.ehc_id)
    _serialise(ctx.session, index)
    row = ctx.session.scalars(select(OneTimeCode).where(OneTimeCode.phone_index == index)
                              .order_by(OneTimeCode.created_at.desc(), OneTimeCode.id).limit(1)).first()
    if row is None or row.status != "live" or row.expires_at <= utcnow():
        raise SecondFactorInvalid("There is no valid code for this card (used, expired or burnt): request a new one.",
                                  attempts_left=0)
    code = code.strip() if isinstance(code, str) else ""
    if len(code) == 6 and code.isdigit() and hmac.compare_digest(row.code_digest, _sms_digest(ctx, row.id, code)):
        row.status = "used"
        return
    row.attempts += 1
    if row.attempts >= MAX_SMS_ATTEMPTS:
        row.status = "burnt"
    _keep_and_raise(ctx.session, SecondFactorInvalid("The code is wrong.",
                                                     attempts_left=MAX_SMS_ATTEMPTS - row.attempts))


def _sms_digest(ctx: Ctx, row_id: str, code: str) -> str:
    return ctx.vault.blind(SMS_DIGEST_CONTEXT, f"{row_id}:{code}")


# -- plumbing --------------------------------------------------------------------------------------

def _keep_and_raise(session: Session, problem: Problem) -> None:
    """Commit what was counted (a wrong PIN or code), then fail the request."""
    session.commit()
    raise problem


def _serialise(session: Session, index: str) -> None:
    """One code request or check at a time per card (SQLite already serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(index[:15], 16)})


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
