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
    card; five wrong tries burn the code. The engine is ``kit.onetime`` (purpose ``second_factor``),
    the sign-in codes' one, kept apart by their keys: the row's ``subject_index`` is
    ``blind("qr.second-factor.card", ehc_id)`` (a sign-in row holds ``blind("phone", phone)``; the
    two HMAC contexts never meet), and ``code_digest`` is ``blind("qr.second-factor.sms", row
    id:code)``. A sign-in code never passes as a second factor, nor the other way round, and nothing
    of the phone is stored.

Failures that count are made to last before the error is raised (``kit.lasting``): the request's
transaction is rolled back on error, and the count must survive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..audit import service as audit
from ..cards import service as cards
from ..cards.service import Card
from ..identity.service import mask_phone
from ..kit import onetime
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Conflict, Invalid, Problem, field_error
from ..kit.lasting import keep_and_raise
from ..mpi import service as mpi
from . import codec
from .codec.codes import online_only
from .models import CardPin

PIN_LENGTH = 6
MAX_PIN_FAILURES = 5
PIN_LOCKOUT = timedelta(minutes=15)
SMS_TEXT = ("【电子健康卡】您的健康卡纸质二维码正在用于缴费或查看报告，验证码{code}，5分钟内有效。"
            "如非本人操作，请勿告知他人，并及时挂失。")

PIN_CONTEXT = "qr.card-pin"
SMS_INDEX_CONTEXT = "qr.second-factor.card"
SMS_DIGEST_CONTEXT = "qr.second-factor.sms"
PIN_PURPOSE = "card.pin"
SMS_PURPOSE = "card.second_factor"
SMS_CODES = onetime.Policy(onetime.SECOND_FACTOR, SMS_DIGEST_CONTEXT, lifetime=timedelta(minutes=5),
                           resend_interval=timedelta(seconds=60), daily_window=timedelta(hours=24),
                           daily_limit=10, max_attempts=5)
SMS_CODE_LIFETIME = SMS_CODES.lifetime
SMS_RESEND_INTERVAL = SMS_CODES.resend_interval
SMS_DAILY_WINDOW = SMS_CODES.daily_window
SMS_DAILY_LIMIT = SMS_CODES.daily_limit
MAX_SMS_ATTEMPTS = SMS_CODES.max_attempts

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
                                 retry_after=onetime.seconds(row.locked_until - now))
    candidate = pin if isinstance(pin, str) else ""
    if _matches(row.digest, _keyed(ctx, row.ehc_id, candidate)):
        if _hasher.check_needs_rehash(row.digest):
            row.digest = _hasher.hash(_keyed(ctx, row.ehc_id, candidate))
        row.failures, row.locked_until = 0, None
        return
    row.failures += 1
    if row.failures >= MAX_PIN_FAILURES:
        row.failures, row.locked_until = 0, now + PIN_LOCKOUT
        keep_and_raise(ctx.session, SecondFactorLocked(
            "Too many wrong PINs: the PIN is locked for 15 minutes.", retry_after=onetime.seconds(PIN_LOCKOUT)))
    problem = wrong or SecondFactorInvalid("The PIN is wrong.")
    problem.extra["attempts_left"] = MAX_PIN_FAILURES - row.failures
    keep_and_raise(ctx.session, problem)


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
    onetime.serialise(ctx.session, index)
    now = utcnow()
    _sms_allowance(ctx.session, index, now)
    holder = mpi.resolve(ctx, card.person_id)
    phone = mpi.demographics(ctx, holder, purpose=SMS_PURPOSE).phone
    if not phone:
        raise SecondFactorUnavailable("The holder has no phone on file; use the card's PIN.", method="sms_code")
    code, row = onetime.issue(ctx.session, ctx.vault.blind, SMS_CODES, index, now)
    accounts.send_sms(ctx, phone, SMS_TEXT.format(code=code))
    return SmsSent(mask_phone(phone), row.expires_at, int(SMS_RESEND_INTERVAL.total_seconds()))


def _sms_allowance(session: Session, index: str, now: datetime) -> None:
    refusal = onetime.allowance(session, SMS_CODES, index, now)
    if refusal is not None and refusal.reason == "too_soon":
        wait = refusal.retry_after
        raise SmsRateLimited(f"A code was sent for this card less than a minute ago; ask again in {wait} s.",
                             retry_after=wait)
    if refusal is not None:
        raise SmsRateLimited(f"At most {SMS_DAILY_LIMIT} codes a day are sent for one card.",
                             retry_after=refusal.retry_after)


def check_sms_code(ctx: Ctx, card: Card, code: str) -> None:
    index = ctx.vault.blind(SMS_INDEX_CONTEXT, card.ehc_id)
    onetime.serialise(ctx.session, index)
    row = onetime.latest(ctx.session, index)
    if onetime.state(row, utcnow()) != "live":
        raise SecondFactorInvalid("There is no valid code for this card (used, expired or burnt): request a new one.",
                                  attempts_left=0)
    if onetime.matches(ctx.vault.blind, SMS_CODES, row, code):
        onetime.use(row)
        return
    left = onetime.count_wrong(SMS_CODES, row)
    keep_and_raise(ctx.session, SecondFactorInvalid("The code is wrong.", attempts_left=left))
