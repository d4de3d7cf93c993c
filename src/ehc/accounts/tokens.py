"""Access tokens: what a sign-in hands out and a request presents. Staff and residents alike.

A token is random; only its SM3 digest is stored, so a stolen database yields no usable token.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import Row
from sqlalchemy.orm import Session

from ..crypto import sm3
from ..kit.clock import utcnow
from ..kit.codes import Channel
from ..kit.context import Actor
from ..kit.errors import Unauthorized
from . import repository
from .models import AccessToken, StaffAccount

TOKEN_LIFETIME = timedelta(hours=8)  # one working shift


def issue_token(session: Session, subject_kind: str, subject_id: str, lifetime: timedelta = TOKEN_LIFETIME) -> str:
    token = secrets.token_urlsafe(32)
    session.add(AccessToken(digest=_digest(token), subject_kind=subject_kind, subject_id=subject_id,
                            expires_at=utcnow() + lifetime))
    session.flush()
    return token


def revoke_token(session: Session, token: str, subject_kind: str | None = None) -> None:
    """End one sign-in; with ``subject_kind``, only a sign-in of that kind (a door signs out only its
    own kind of token: the residents' sign-out never ends a staff member's session)."""
    repository.delete_token(session, _digest(token), subject_kind)


def actor_for_token(session: Session, token: str, channel: Channel) -> Actor:
    # The token and a staff member's account in one query: a revoked token is a deleted row, an
    # expired one is refused here, a disabled or deleted account below.
    row = repository.token_with_staff(session, _digest(token))
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("The access token is unknown or expired; sign in again.", code="token_invalid")
    if row.subject_kind == "staff":
        if row.id is None or not row.active:
            raise Unauthorized("The account behind this token is disabled.", code="token_invalid")
        return staff_actor(row, channel)
    if row.subject_kind == "resident":
        resident = repository.resident_account(session, row.subject_id)
        if resident is None or not resident.active:
            raise Unauthorized("The account behind this token is disabled.", code="token_invalid")
        return resident_actor(row.subject_id, channel)
    raise Unauthorized("Unsupported token.", code="token_invalid")


def resident_actor(person_id: str, channel: Channel) -> Actor:
    """A signed-in resident: ``id`` is their master index id. They act on their own card and on the
    cards of family members they guard (me/auth.py)."""
    return Actor(kind="resident", channel=channel, id=person_id, roles=frozenset({"resident"}))


def revoke_subject_tokens(session: Session, subject_kind: str, subject_id: str, keep: str | None = None) -> None:
    """End every sign-in of one subject, except the one whose token is ``keep``."""
    repository.delete_tokens_of(session, subject_kind, subject_id, _digest(keep) if keep is not None else None)


def staff_actor(account: StaffAccount | Row, channel: Channel) -> Actor:
    """``account``: the account, or a row with its ``id``, ``institution_id``, ``username``, ``role``
    and ``department_code`` (``repository.token_with_staff``)."""
    return Actor(
        kind="staff",
        channel=channel,
        id=account.id,
        institution_id=account.institution_id,
        operator=account.username,
        roles=frozenset({account.role}),
        department=account.department_code,
    )


def _digest(token: str) -> str:
    return sm3(token.encode()).hex()
