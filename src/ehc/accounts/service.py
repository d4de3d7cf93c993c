"""Staff accounts and bearer tokens: create, sign in (with lock-out), resolve a token to an actor.

Everything a request or command does takes its ``Ctx``. The token functions and ``staff_region``
take the ``Session``: they run before there is a ``Ctx`` (resolving the caller, ``accounts.auth``),
for the resident sign-in engine (``residents.py``), which hands its session over, or for another
actor than the request's (``staff_region``)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
import logging
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..kit import dialect, ids, onetime
from ..kit.clock import utcnow
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthorized, field_error
from ..kit.lasting import keep_and_raise
from ..kit.regions import region_problem
from . import repository, sms
# Part of this face: the resident sign-in (``residents.py``), the access tokens (``tokens.py``) and the
# development SMS outbox (``sms.py``).
from .residents import (
    CodeRequested,
    SignedIn,
    find_holders_with,
    has_password,
    request_code,
    session_lifetime,
    set_password,
    sign_in_with_code,
    sign_in_with_password,
    sign_out,
)
from .sms import outbox, sealed_columns
from .tokens import (
    TOKEN_LIFETIME,
    actor_for_token,
    issue_token,
    resident_actor,
    revoke_subject_tokens,
    revoke_token,
    staff_actor,
)
from .models import StaffAccount, StaffSignInFailures
from ..kit.roles import COMMISSION_ROLES, INSTITUTION_ROLES, Role

# Wrong passwords slow the source that sends them down, never the account for everyone: from the
# fifth failure on, that source waits before its next try, the wait doubling with each failure up to
# a quarter of an hour. Many sources guessing at one account at once (more failures since the last
# sign-in than any one person makes) slow every source to one try per ``CROWD_WAIT``.
FREE_TRIES = 5
FIRST_WAIT = timedelta(minutes=1)
LONGEST_WAIT = timedelta(minutes=15)
CROWD_FAILURES = 20
CROWD_WAIT = timedelta(seconds=30)
_hasher = PasswordHasher()
log = logging.getLogger(__name__)


def create_staff(
    ctx: Ctx,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    institution_id: str | None = None,
    region_code: str | None = None,
    department_code: str | None = None,
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
    if repository.username_taken(ctx.session, username):
        raise Conflict("That username is taken.", code="username_taken")
    account = StaffAccount(
        id=ids.new_id(),
        username=username,
        display_name=display_name or username,
        password_hash=_hasher.hash(password),
        role=role.value,
        institution_id=institution_id,
        region_code=region_code,
        department_code=department_code,
    )
    ctx.session.add(account)
    ctx.session.flush()
    return account


def sign_in_staff(ctx: Ctx, username: str, password: str, source: str | None = None) -> tuple[str, StaffAccount]:
    """Return a fresh bearer token for the account, from ``source`` (the client's address).

    Wrong passwords slow their source down (``sign_in_slowed``, 429 with ``retry_after``) rather
    than lock the account; the owner is told how many there were at their next sign-in
    (``failures_before_sign_in``, shown on the staff home).
    """
    account = repository.staff_by_username(ctx.session, username)
    now = utcnow()
    if account is None or not account.active:
        _hasher.hash(password)  # same work either way: no timing hint that the username exists
        raise Unauthorized("Wrong username or password.", code="sign_in_failed")
    # One try at a time per account, so concurrent guesses each see the others' counts.
    dialect.serialise(ctx.session, f"accounts.staff_sign_in:{account.id}")
    ctx.session.refresh(account)
    source_index = ctx.vault.blind("staff.sign_in_source", source or "unknown")
    failures = repository.sign_in_failures(ctx.session, account.id, source_index)
    waits = [until for until in (account.locked_until, failures.wait_until if failures else None) if until and until > now]
    if waits:
        raise TooManyRequests("Too many wrong passwords from here; wait before the next try.", code="sign_in_slowed",
                              retry_after=onetime.seconds(max(waits) - now))
    try:
        _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        _count_failure(ctx, account, failures, source_index, now)
        # The request's transaction rolls back on the error below; the count must survive it.
        keep_and_raise(ctx.session, Unauthorized("Wrong username or password.", code="sign_in_failed"))
    if account.failed_attempts:
        log.warning("staff account %s signed in after %d wrong passwords", account.id, account.failed_attempts)
    account.failures_before_sign_in = account.failed_attempts
    account.failure_last_before_sign_in = account.last_failed_at if account.failed_attempts else None
    account.failed_attempts = 0
    account.locked_until = None
    repository.forget_sign_in_failures(ctx.session, account.id, source_index)
    return issue_token(ctx.session, "staff", account.id), account


def _count_failure(ctx: Ctx, account: StaffAccount, failures: StaffSignInFailures | None, source_index: str,
                   now: datetime) -> None:
    if failures is None:
        failures = StaffSignInFailures(account_id=account.id, source_index=source_index, failures=0)
        ctx.session.add(failures)
    failures.failures += 1
    failures.last_failed_at = now
    if failures.failures >= FREE_TRIES:
        failures.wait_until = now + min(FIRST_WAIT * 2 ** (failures.failures - FREE_TRIES), LONGEST_WAIT)
    account.failed_attempts += 1
    account.last_failed_at = now
    if account.failed_attempts >= CROWD_FAILURES:
        account.locked_until = now + CROWD_WAIT
    if account.failed_attempts in (FREE_TRIES, CROWD_FAILURES):
        log.warning("staff account %s: %d wrong passwords since its last sign-in", account.id, account.failed_attempts)


# -- staff management -----------------------------------------------------------------------------
# An institution's admin manages the staff of that institution (the institution roles only); a
# platform admin manages the health commission's staff. Who may reach which institution is decided
# before these are called (institutions/auth.py); these keep each account inside its own scope.

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{2,63}")


def get_staff(ctx: Ctx, staff_id: str) -> StaffAccount | None:
    return repository.staff(ctx.session, staff_id)


def staff_region(session: Session, actor: Actor) -> str | None:
    """The GB/T 2260 region of a health-commission staff member acting now (None for anyone else)."""
    if actor.kind != "staff" or actor.id is None:
        return None
    account = repository.staff(session, actor.id)
    return account.region_code if account is not None else None


def list_staff(ctx: Ctx, institution_id: str | None) -> list[StaffAccount]:
    """Staff of one institution, or (``None``) the health commission's staff."""
    return repository.staff_of(ctx.session, institution_id)


def institution_staff(ctx: Ctx, institution_id: str, staff_id: str) -> StaffAccount:
    account = repository.staff(ctx.session, staff_id)
    if account is None or account.institution_id != institution_id:
        raise NotFound("No such staff member at this institution.", code="staff_not_found")
    return account


def commission_staff(ctx: Ctx, staff_id: str) -> StaffAccount:
    account = repository.staff(ctx.session, staff_id)
    if account is None or account.institution_id is not None:
        raise NotFound("No such health-commission staff member.", code="staff_not_found")
    return account


def _field(field: str, code: str, message: str) -> Invalid:
    return Invalid(message, code=code, errors=[field_error(field, code, message)])


def _check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise _field("username", "username_invalid",
                     "A username is 3-64 letters, digits or . _ @ -, starting with a letter or digit.")
    return username


@contextmanager
def _username_race(session: Session) -> Iterator[None]:
    """Two admins creating the same username at once: the loser gets 409, not a 500."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError:
        raise Conflict("That username is taken.", code="username_taken") from None


def _role_in(role: str, allowed: frozenset[Role], scope: str) -> Role:
    try:
        value = Role(role)
    except ValueError:
        raise _field("role", "role_unknown", f"Unknown role {role!r}.") from None
    if value not in allowed:
        names = ", ".join(sorted(r.value for r in allowed))
        raise _field("role", "role_out_of_scope", f"{scope} staff hold one of these roles: {names}.")
    return value


def _commission_region(role: Role, region_code: str | None) -> str | None:
    if region_code is None:
        if role is Role.REGIONAL_OPERATOR:
            raise _field("region_code", "region_required", "A regional operator needs a region (GB/T 2260).")
        return None
    problem = region_problem(region_code)
    if problem:
        raise _field("region_code", "region_code_invalid", problem)
    return region_code


def create_institution_staff(
    ctx: Ctx, institution_id: str, *, username: str, password: str, role: str, display_name: str | None = None,
    department_code: str | None = None,
) -> StaffAccount:
    """A staff account at ``institution_id`` with one of the institution roles, in one of its departments
    if given (the caller has checked the code against the institution's departments: institutions
    depends on this domain, not the other way round)."""
    role = _role_in(role, INSTITUTION_ROLES, "Institution")
    with _username_race(ctx.session):
        return create_staff(ctx, username=_check_username(username), password=password, role=role.value,
                            display_name=display_name, institution_id=institution_id,
                            department_code=department_code)


def create_commission_staff(
    ctx: Ctx, *, username: str, password: str, role: str, display_name: str | None = None,
    region_code: str | None = None,
) -> StaffAccount:
    """A health-commission account: regional operator (with a region), auditor or platform admin."""
    role = _role_in(role, COMMISSION_ROLES, "Health-commission")
    region = _commission_region(role, region_code)
    with _username_race(ctx.session):
        return create_staff(ctx, username=_check_username(username), password=password, role=role.value,
                            display_name=display_name, region_code=region)


def update_staff(
    ctx: Ctx,
    account: StaffAccount,
    *,
    active: bool | None = None,
    display_name: str | None = None,
    role: str | None = None,
    region_code: str | None = None,
    clear_region: bool = False,
    department_code: str | None = None,
    clear_department: bool = False,
) -> StaffAccount:
    """Enable, disable, rename or change the role of an account, keeping it in its scope.

    Disabling ends every session of the account at once (its tokens are deleted, and a token is
    refused anyway while the account is disabled). Nobody disables or re-roles their own account:
    an institution would otherwise lock itself out of its last admin by a slip of the mouse.
    """
    own = ctx.actor.kind == "staff" and ctx.actor.id == account.id
    if own and (active is False or (role is not None and role != account.role)):
        raise Conflict("You cannot disable your own account or change your own role; ask another admin.",
                       code="own_account_change_refused")
    if account.institution_id is not None:
        if region_code is not None:
            raise _field("region_code", "region_not_allowed", "Institution staff have no region.")
        new_role = _role_in(role, INSTITUTION_ROLES, "Institution") if role is not None else Role(account.role)
    else:
        new_role = _role_in(role, COMMISSION_ROLES, "Health-commission") if role is not None else Role(account.role)
        region = None if clear_region else (region_code if region_code is not None else account.region_code)
        account.region_code = _commission_region(new_role, region)
    if display_name is not None:
        name = " ".join(display_name.split())
        if not name or len(name) > 64:
            raise _field("display_name", "display_name_invalid", "A display name is 1 to 64 characters.")
        account.display_name = name
    account.role = new_role.value
    if department_code is not None or clear_department:
        if account.institution_id is None:
            raise _field("department_code", "department_not_allowed", "Health-commission staff have no department.")
        account.department_code = None if clear_department else department_code
    if active is not None and active != account.active:
        account.active = active
        if active:
            account.failed_attempts = 0
            account.locked_until = None
            repository.forget_sign_in_failures(ctx.session, account.id)
        else:
            repository.delete_tokens_of(ctx.session, "staff", account.id)
    ctx.session.flush()
    return account


def send_sms(ctx: Ctx, phone: str, text: str) -> None:
    """Text ``phone`` through the platform's SMS sender (``accounts.sms``)."""
    sms.get_sender(ctx).send(phone, text)


RESIDENT_COOKIE = "ehc_resident"  # a resident's sign-in for pages: HttpOnly, SameSite=Lax
STAFF_COOKIE = "ehc_staff"  # a staff member's sign-in for pages (``web/staff/``)


def sign_in_token(headers: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
    """The access token a request is signed in with: its ``Authorization: Bearer`` token, else the
    staff or resident pages' cookie (the API and the pages share the sign-in)."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return cookies.get(STAFF_COOKIE) or cookies.get(RESIDENT_COOKIE) or None
