"""The accounts domain's queries: staff accounts, access tokens, resident accounts."""

from __future__ import annotations

from sqlalchemy import Row, Select, and_, bindparam, delete, select
from sqlalchemy.orm import Session

from .models import AccessToken, ResidentAccount, StaffAccount, StaffSignInFailures


def staff_by_username(session: Session, username: str) -> StaffAccount | None:
    return session.scalar(select(StaffAccount).where(StaffAccount.username == username))


def sign_in_failures(session: Session, account_id: str, source_index: str) -> StaffSignInFailures | None:
    return session.get(StaffSignInFailures, (account_id, source_index))


def forget_sign_in_failures(session: Session, account_id: str, source_index: str | None = None) -> None:
    """Clear the failures of one source of the account, or (``None``) of all of them."""
    query = delete(StaffSignInFailures).where(StaffSignInFailures.account_id == account_id)
    if source_index is not None:
        query = query.where(StaffSignInFailures.source_index == source_index)
    session.execute(query)


def username_taken(session: Session, username: str) -> bool:
    return session.scalar(select(StaffAccount.id).where(StaffAccount.username == username)) is not None


def staff(session: Session, staff_id: str) -> StaffAccount | None:
    return session.get(StaffAccount, staff_id)


def staff_of(session: Session, institution_id: str | None) -> list[StaffAccount]:
    """Staff of one institution, or (``None``) the health commission's staff, oldest first."""
    where = (StaffAccount.institution_id == institution_id) if institution_id else StaffAccount.institution_id.is_(None)
    return list(session.scalars(select(StaffAccount).where(where).order_by(StaffAccount.created_at, StaffAccount.username)))


def _token_with_staff_statement() -> Select:
    token, account = AccessToken.__table__, StaffAccount.__table__
    return (select(token.c.subject_kind, token.c.subject_id, token.c.expires_at, account.c.id, account.c.username,
                   account.c.role, account.c.institution_id, account.c.department_code, account.c.active)
            .select_from(token.outerjoin(account, and_(token.c.subject_kind == "staff",
                                                       account.c.id == token.c.subject_id)))
            .where(token.c.digest == bindparam("digest")))


# Built once, of the tables (not the mapped classes) and run on the session's connection: every
# request with a bearer token runs it, and building it and going through the ORM's execution for
# plain columns cost more client CPU than running it.
_TOKEN_WITH_STAFF = _token_with_staff_statement()


def token_with_staff(session: Session, digest: str) -> Row | None:
    """A token and, when it is a staff member's, their account, in one round trip (every staff
    request asks both): ``subject_kind``, ``subject_id``, ``expires_at`` of the token, and the
    account's ``id``, ``username``, ``role``, ``institution_id``, ``department_code``, ``active``
    (all None when the token is not a staff member's or the account is gone). None: no such token."""
    return session.connection().execute(_TOKEN_WITH_STAFF, {"digest": digest}).first()


def resident_account(session: Session, person_id: str) -> ResidentAccount | None:
    return session.scalar(select(ResidentAccount).where(ResidentAccount.person_id == person_id))


def delete_token(session: Session, digest: str, subject_kind: str | None = None) -> None:
    query = delete(AccessToken).where(AccessToken.digest == digest)
    if subject_kind is not None:
        query = query.where(AccessToken.subject_kind == subject_kind)
    session.execute(query)


def delete_tokens_of(session: Session, subject_kind: str, subject_id: str, keep_digest: str | None = None) -> None:
    query = delete(AccessToken).where(AccessToken.subject_kind == subject_kind, AccessToken.subject_id == subject_id)
    if keep_digest is not None:
        query = query.where(AccessToken.digest != keep_digest)
    session.execute(query)
