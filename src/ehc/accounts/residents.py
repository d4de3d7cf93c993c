"""Resident accounts: sign-in with a one-time SMS code or a password, and the rules around them.

Who is "the resident" behind a phone
    The card holders whose card was registered with that mobile number, minus those bound as a
    family member of someone with the same number (children and elderly people share their
    guardian's phone and are managed from the guardian's account): ``cards.service.holders_for_phone``.
    When several adults remain (a couple sharing one phone), the sign-in must also give the last four
    characters of the holder's document number (``document_last4``); without it the answer is
    ``resident_choice_required`` (409), and only after the code was proven right, so nobody learns
    anything about a phone they do not hold. A wrong ``document_last4`` counts as a wrong code.

One-time codes
    6 digits, valid 5 minutes, single use; requesting a new code retires the previous one. At most one
    code per phone per 60 s (``otp_rate_limited``, 429, ``retry_after``) and 10 per rolling 24 hours
    (``otp_daily_limit_reached``, 429, ``retry_after``). 5 wrong tries burn the code (``otp_burnt``).
    A code request answers the same whether or not the phone has a card (no enumeration); the text
    message is only sent when it does. Only HMAC-SM3 of (code row id, code) is stored, under the
    blind-index key, and the phone only as its blind index. The engine is ``kit.onetime`` (purpose
    ``sign_in``), shared with the second factor of printed QR codes.

Passwords
    Optional, argon2id, set by a signed-in resident (``set_password``); changing one needs the current
    password or a fresh one-time code (which is also how a forgotten password is reset). 5 wrong
    passwords lock password sign-in for 15 minutes (``account_locked``, 401, ``retry_after``); a
    sign-in with a code still works meanwhile, since it proves possession of the phone.

Failures that must count (a wrong code, a wrong password) are made to last before the error is raised
(``kit.lasting``): the request's transaction is rolled back on error, and the count must survive it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..identity.service import normalise_phone
from ..kit import ids, onetime
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Conflict, Invalid, Problem, TooManyRequests, Unauthorized, field_error
from ..kit.lasting import keep_and_raise
from ..kit.onetime import OneTimeCode
from . import sms, tokens
from .models import ResidentAccount

CODES = onetime.Policy(onetime.SIGN_IN, "resident.otp", lifetime=timedelta(minutes=5),
                       resend_interval=timedelta(seconds=60), daily_window=timedelta(hours=24), daily_limit=10,
                       max_attempts=5)
CODE_LIFETIME = CODES.lifetime
RESEND_INTERVAL = CODES.resend_interval
DAILY_WINDOW = CODES.daily_window
DAILY_LIMIT = CODES.daily_limit
MAX_CODE_ATTEMPTS = CODES.max_attempts
MAX_PASSWORD_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
PASSWORD_MIN, PASSWORD_MAX = 8, 128
SMS_TEXT = "【电子健康卡】您的登录验证码是{code}，5分钟内有效。请勿将验证码告诉他人。"

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
_DUMMY_HASH = _hasher.hash("not a password anyone has")
_LAST4 = re.compile(r"[0-9A-Z]{4}")


@dataclass(frozen=True)
class CodeRequested:
    expires_in: int  # seconds the code stays valid
    resend_after: int  # seconds before another code may be requested


@dataclass(frozen=True)
class SignedIn:
    token: str
    expires_in: int
    person_id: str
    ehc_id: str
    method: str  # otp | password


def session_lifetime(ctx: Ctx) -> timedelta:
    return timedelta(hours=ctx.settings.resident_session_hours)


# -- one-time codes -------------------------------------------------------------------------------

def request_code(ctx: Ctx, phone: str) -> CodeRequested:
    """Issue a sign-in code for ``phone`` and text it to the phone if a resident holds it."""
    phone = normalise_phone(phone)
    index = ctx.vault.blind("phone", phone)
    onetime.serialise(ctx.session, index)
    now = utcnow()
    refusal = onetime.allowance(ctx.session, CODES, index, now)
    if refusal is not None and refusal.reason == "too_soon":
        wait = refusal.retry_after
        raise TooManyRequests(f"A code was sent less than a minute ago; ask again in {wait} s.",
                              code="otp_rate_limited", retry_after=wait)
    if refusal is not None:
        raise TooManyRequests(f"At most {DAILY_LIMIT} codes a day are sent to one phone; try again later.",
                              code="otp_daily_limit_reached", retry_after=refusal.retry_after)
    code, _ = onetime.issue(ctx.session, ctx.vault.blind, CODES, index, now)
    if _holders(ctx, phone):
        sms.get_sender(ctx).send(phone, SMS_TEXT.format(code=code))
    return CodeRequested(expires_in=int(CODE_LIFETIME.total_seconds()),
                         resend_after=int(RESEND_INTERVAL.total_seconds()))


def _check_code(ctx: Ctx, index: str, code: str) -> OneTimeCode:
    """The live code row for this phone if ``code`` matches it; a wrong code counts (and is kept)."""
    row = onetime.latest(ctx.session, index)
    state = onetime.state(row, utcnow())
    if state in ("missing", "used", "superseded"):
        raise Unauthorized("There is no code waiting for this phone; request a new one.", code="otp_invalid")
    if state == "burnt":
        raise Unauthorized("Too many wrong codes; request a new one.", code="otp_burnt")
    if state == "expired":
        raise Unauthorized("The code has expired; request a new one.", code="otp_expired")
    if not onetime.matches(ctx.vault.blind, CODES, row, code or ""):
        _count_wrong(ctx, row)
    return row


def _count_wrong(ctx: Ctx, row: OneTimeCode, *, problem: Problem | None = None) -> None:
    left = onetime.count_wrong(CODES, row)
    if row.status == "burnt":
        keep_and_raise(ctx.session, Unauthorized("Too many wrong codes; this one no longer works. Request a new one.",
                                                 code="otp_burnt"))
    keep_and_raise(ctx.session, problem or Unauthorized("The code is wrong.", code="otp_invalid", attempts_left=left))


# -- sign-in --------------------------------------------------------------------------------------

def sign_in_with_code(ctx: Ctx, phone: str, code: str, document_last4: str | None = None) -> SignedIn:
    phone = normalise_phone(phone)
    index = ctx.vault.blind("phone", phone)
    onetime.serialise(ctx.session, index)
    row = _check_code(ctx, index, code)
    holders = _holders(ctx, phone)
    if not holders:  # no text was sent for a phone without a card, so this cannot be a right code
        _count_wrong(ctx, row)
    try:
        card, person = _choose(ctx, holders, document_last4)
    except _WrongLast4:
        _count_wrong(ctx, row, problem=Unauthorized(
            "No card on this phone ends with those document characters.", code="document_last4_mismatch",
            attempts_left=MAX_CODE_ATTEMPTS - row.attempts - 1))
    onetime.use(row)
    account = _account_for(ctx.session, person.id, index)
    if not account.active:
        raise Unauthorized("This account is disabled; please go to a service window.", code="account_disabled")
    return _signed_in(ctx, account, card.ehc_id, "otp")


def sign_in_with_password(ctx: Ctx, phone: str, password: str, document_last4: str | None = None) -> SignedIn:
    phone = normalise_phone(phone)
    failed = Unauthorized("Wrong phone number or password.", code="sign_in_failed")
    holders = _holders(ctx, phone)
    try:
        card, person = _choose(ctx, holders, document_last4) if holders else (None, None)
    except _WrongLast4:
        card, person = None, None
    account = ctx.session.scalar(select(ResidentAccount).where(ResidentAccount.person_id == person.id)) \
        if person is not None else None
    if account is None or not account.active or not account.password_hash:
        _verify(_DUMMY_HASH, password)  # the same work either way: no timing hint
        raise failed
    now = utcnow()
    if account.locked_until and account.locked_until > now:
        raise Unauthorized("Too many wrong passwords; try again later or sign in with a code.",
                           code="account_locked", retry_after=onetime.seconds(account.locked_until - now))
    if not _verify(account.password_hash, password):
        _password_failed(ctx.session, account, failed)
    account.failed_attempts = 0
    account.locked_until = None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    account.phone_index = ctx.vault.blind("phone", phone)
    return _signed_in(ctx, account, card.ehc_id, "password")


def _signed_in(ctx: Ctx, account: ResidentAccount, ehc_id: str, method: str) -> SignedIn:
    account.last_sign_in_at = utcnow()
    lifetime = session_lifetime(ctx)
    token = tokens.issue_token(ctx.session, "resident", account.person_id, lifetime)
    return SignedIn(token=token, expires_in=int(lifetime.total_seconds()), person_id=account.person_id,
                    ehc_id=ehc_id, method=method)


def sign_out(session: Session, token: str) -> None:
    tokens.revoke_token(session, token, "resident")


# -- passwords ------------------------------------------------------------------------------------

def set_password(ctx: Ctx, person_id: str, new_password: str, *, current_password: str | None = None,
                 code: str | None = None, keep_token: str | None = None) -> None:
    """Set or change the signed-in resident's password. Other sign-ins of theirs are ended."""
    account = ctx.session.scalar(select(ResidentAccount).where(ResidentAccount.person_id == person_id))
    if account is None or not account.active:
        raise Unauthorized("Sign in again.", code="token_invalid")
    if account.password_hash:
        if current_password:
            now = utcnow()
            if account.locked_until and account.locked_until > now:
                raise Unauthorized("Too many wrong passwords; try again later or confirm with a code.",
                                   code="account_locked", retry_after=onetime.seconds(account.locked_until - now))
            if not _verify(account.password_hash, current_password):
                _password_failed(ctx.session, account, Unauthorized(
                    "The current password is wrong.", code="current_password_wrong"))
        elif code:
            onetime.serialise(ctx.session, account.phone_index)
            onetime.use(_check_code(ctx, account.phone_index, code))
        else:
            raise Invalid("To change your password, give the current one or a code sent to your phone.",
                          code="current_password_required",
                          errors=[field_error("current_password", "current_password_required",
                                              "Give the current password, or a one-time code as `code`.")])
    _check_strength(ctx, account, new_password)
    account.password_hash = _hasher.hash(new_password)
    account.failed_attempts = 0
    account.locked_until = None
    tokens.revoke_subject_tokens(ctx.session, "resident", person_id, keep=keep_token)


def has_password(ctx: Ctx, person_id: str) -> bool:
    """Whether the resident has set a password (then changing it needs the current one or a code)."""
    account = ctx.session.scalar(select(ResidentAccount).where(ResidentAccount.person_id == person_id))
    return bool(account is not None and account.password_hash)


def _check_strength(ctx: Ctx, account: ResidentAccount, password: str) -> None:
    def problem(message: str, code: str) -> Invalid:
        return Invalid(message, code=code, errors=[field_error("new_password", code, message)])

    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise problem(f"A password has {PASSWORD_MIN} to {PASSWORD_MAX} characters.", "password_length")
    if len(set(password)) < 4:
        raise problem("The password is too simple.", "password_too_simple")
    digits = "".join(ch for ch in password if ch.isdigit())
    if len(digits) >= 11 and ctx.vault.blind("phone", digits[-11:]) == account.phone_index:
        raise problem("Do not use your phone number as your password.", "password_too_simple")


def _password_failed(session: Session, account: ResidentAccount, problem: Problem) -> None:
    account.failed_attempts += 1
    if account.failed_attempts >= MAX_PASSWORD_FAILURES:
        account.locked_until = utcnow() + LOCKOUT
        account.failed_attempts = 0
    keep_and_raise(session, problem)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


# -- who is who -----------------------------------------------------------------------------------

class _WrongLast4(Exception):
    pass


# The master index asks this domain for a staff member's region, so this domain imports neither the
# master index nor the card registry built on it: ``ehc.wiring`` hands over the two look-ups it needs.
# holders_for_phone(ctx, phone) -> [(card, person)]; documents_of(ctx, person) -> document numbers.
HoldersForPhone = Callable[[Ctx, str], list]
DocumentsOf = Callable[[Ctx, object], list[str]]
_holders_for_phone: HoldersForPhone | None = None
_documents_of: DocumentsOf | None = None


def find_holders_with(*, holders_for_phone: HoldersForPhone, documents_of: DocumentsOf) -> None:
    global _holders_for_phone, _documents_of
    _holders_for_phone, _documents_of = holders_for_phone, documents_of


def _holders(ctx: Ctx, phone: str):  # noqa: ANN202
    if _holders_for_phone is None:
        raise RuntimeError("accounts: no card-holder look-up registered (ehc.wiring.register_hooks)")
    return _holders_for_phone(ctx, phone)


def _choose(ctx: Ctx, holders: list, document_last4: str | None):  # noqa: ANN202
    """Pick the resident among the phone's holders (module docstring)."""
    if document_last4 is None or not document_last4.strip():
        if len(holders) == 1:
            return holders[0]
        raise Conflict(
            "Several card holders use this phone. Give the last 4 characters of your document number.",
            code="resident_choice_required", errors=[field_error(
                "document_last4", "resident_choice_required", "The last 4 characters of your document number.")])
    last4 = document_last4.strip().upper()
    if not _LAST4.fullmatch(last4):
        raise _WrongLast4
    matches = []
    for card, person in holders:
        documents = _documents_of(ctx, person)
        if any(number.upper().endswith(last4) for number in documents):
            matches.append((card, person))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise _WrongLast4
    raise Conflict("Several card holders on this phone match; please sign in at a service window.",
                   code="resident_ambiguous")


def _account_for(session: Session, person_id: str, phone_index: str) -> ResidentAccount:
    account = session.scalar(select(ResidentAccount).where(ResidentAccount.person_id == person_id))
    if account is None:
        account = ResidentAccount(id=ids.new_id(), person_id=person_id, phone_index=phone_index, active=True,
                                  failed_attempts=0)
        session.add(account)
        session.flush()
    account.phone_index = phone_index  # the person's phone may have changed since the last sign-in
    return account
