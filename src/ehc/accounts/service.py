"""Staff accounts and bearer tokens: create, sign in (with lock-out), resolve a token to an actor."""

from __future__ import annotations

import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..crypto import sm3
from ..kit import ids
from ..kit.clock import utcnow
from ..kit.codes import Channel
from ..kit.context import Actor
from ..kit.errors import Conflict, Invalid, Unauthorized
from .models import AccessToken, StaffAccount
from .roles import COMMISSION_ROLES, INSTITUTION_ROLES, Role

TOKEN_LIFETIME = timedelta(hours=8)  # one working shift
MAX_FAILED_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=15)
_hasher = PasswordHasher()


def create_staff(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    institution_id: str | None = None,
    region_code: str | None = None,
) -> StaffAccount:
    try:
        role = Role(role)
    except ValueError:
        raise Invalid(f"Unknown role {role!r}; roles are {', '.join(r.value for r in Role)}.",
                      code="role_unknown") from None
    if role in INSTITUTION_ROLES and not institution_id:
        raise Invalid("Institution staff need an institution.", code="institution_required")
    if role in COMMISSION_ROLES and institution_id:
        raise Invalid("Health-commission roles do not belong to an institution.", code="institution_not_allowed")
    if len(password) < 10:
        raise Invalid("Passwords are at least 10 characters.", code="password_too_short")
    if session.scalar(select(StaffAccount.id).where(StaffAccount.username == username)):
        raise Conflict("That username is taken.", code="username_taken")
    account = StaffAccount(
        id=ids.new_id(),
        username=username,
        display_name=display_name or username,
        password_hash=_hasher.hash(password),
        role=role.value,
        institution_id=institution_id,
        region_code=region_code,
    )
    session.add(account)
    session.flush()
    return account


def sign_in_staff(session: Session, username: str, password: str) -> tuple[str, StaffAccount]:
    """Return a fresh bearer token. Repeated failures lock the account for a while."""
    account = session.scalar(select(StaffAccount).where(StaffAccount.username == username))
    now = utcnow()
    if account is None or not account.active:
        _hasher.hash(password)  # same work either way: no timing hint that the username exists
        raise Unauthorized("Wrong username or password.", code="sign_in_failed")
    if account.locked_until and account.locked_until > now:
        raise Unauthorized("Too many failed sign-ins; try again later.", code="account_locked",
                           retry_after=int((account.locked_until - now).total_seconds()))
    try:
        _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        account.failed_attempts += 1
        if account.failed_attempts >= MAX_FAILED_ATTEMPTS:
            account.locked_until = now + LOCKOUT
            account.failed_attempts = 0
        raise Unauthorized("Wrong username or password.", code="sign_in_failed") from None
    account.failed_attempts = 0
    account.locked_until = None
    return issue_token(session, "staff", account.id), account


def issue_token(session: Session, subject_kind: str, subject_id: str, lifetime: timedelta = TOKEN_LIFETIME) -> str:
    token = secrets.token_urlsafe(32)
    session.add(AccessToken(digest=_digest(token), subject_kind=subject_kind, subject_id=subject_id,
                            expires_at=utcnow() + lifetime))
    session.flush()
    return token


def revoke_token(session: Session, token: str) -> None:
    session.execute(delete(AccessToken).where(AccessToken.digest == _digest(token)))


def actor_for_token(session: Session, token: str, channel: Channel) -> Actor:
    row = session.get(AccessToken, _digest(token))
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("The access token is unknown or expired; sign in again.", code="token_invalid")
    if row.subject_kind == "staff":
        account = session.get(StaffAccount, row.subject_id)
        if account is None or not account.active:
            raise Unauthorized("The account behind this token is disabled.", code="token_invalid")
        return staff_actor(account, channel)
    raise Unauthorized("Unsupported token.", code="token_invalid")


def staff_actor(account: StaffAccount, channel: Channel) -> Actor:
    return Actor(
        kind="staff",
        channel=channel,
        id=account.id,
        institution_id=account.institution_id,
        operator=account.username,
        roles=frozenset({account.role}),
    )


def _digest(token: str) -> str:
    return sm3(token.encode()).hex()


