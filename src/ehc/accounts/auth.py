"""Who is calling: a signed hospital system (apps/), a bearer token (staff or resident), a page's
sign-in cookie, or nobody (the public website); and who may manage staff accounts, as typed
dependencies."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from ..apps import service as apps_service
from ..institutions import service as institutions
from ..kit.auth import require_roles
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.deps import get_platform
from ..kit.errors import Unauthorized
from . import service
from ..kit.roles import Role

# The channel a staff member works through, by role (card-use monitoring codes).
_ROLE_CHANNEL = {
    Role.DOCTOR: Channel.WORKSTATION,
    Role.NURSE: Channel.WORKSTATION,
    Role.FAMILY_DOCTOR: Channel.WORKSTATION,
}


STAFF_COOKIE = service.STAFF_COOKIE  # a staff member's sign-in for pages
RESIDENT_COOKIE = service.RESIDENT_COOKIE  # a resident's sign-in for pages: HttpOnly, SameSite=Lax
# Channels a resident's app may declare with ``X-EHC-Channel``; anything else is the public website.
_RESIDENT_CHANNELS = {Channel.OFFICIAL_ACCOUNT.value: Channel.OFFICIAL_ACCOUNT,
                      Channel.MINI_PROGRAM.value: Channel.MINI_PROGRAM}


def _bearer(request: Request) -> str | None:
    return service.sign_in_token(request.headers, request.cookies)


def resident_channel(request: Request) -> Channel:
    return _RESIDENT_CHANNELS.get(request.headers.get("X-EHC-Channel", "").strip(), Channel.WEBSITE)


def set_resident_cookie(response: Response, request: Request, token: str, max_age: int, *, production: bool) -> None:
    """The page sign-in: HttpOnly (no script reads it), SameSite=Lax (no cross-site form post carries
    it), Secure over HTTPS and always in production."""
    response.set_cookie(RESIDENT_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=production or request.url.scheme == "https")


def clear_resident_cookie(response: Response) -> None:
    response.delete_cookie(RESIDENT_COOKIE, path="/", httponly=True, samesite="lax")


def _machine_actor(request: Request, session: Session, body: bytes) -> Actor:
    raw_path = request.scope.get("raw_path")
    signed = apps_service.SignedRequest(
        method=request.method,
        path=raw_path.decode("latin-1") if raw_path else request.url.path,
        query=request.scope.get("query_string", b"").decode("latin-1"),
        body=body,
        headers=request.headers,
    )
    # Checked and its nonce spent in a transaction of its own, before the request's work begins. The
    # app's rate limit is applied once the signature is good (strangers cannot drain it) and before
    # the nonce is spent (a refused request leaves nothing behind); with Redis the claim's own script
    # spends it, in the same round trip.
    platform = get_platform(request)
    nonces = platform.nonces
    before_claim = None if nonces.spends_app_rate else (lambda actor: platform.check_rate(actor, None))
    actor = apps_service.admit(platform.db.engine, signed, before_claim=before_claim, nonces=nonces, session=session)
    # The department the call is made for (optional): one of the app's institution's departments, else
    # 422 department_not_found. Department-level consent grants for health records are checked against it.
    named = request.headers.get(apps_service.HEADER_DEPARTMENT)
    if named is not None and actor.institution_id is not None:
        return replace(actor, department=institutions.department_of(session, actor.institution_id, named,
                                                                    field=apps_service.HEADER_DEPARTMENT))
    return actor


def identify_caller(request: Request, session: Session, body: bytes) -> Actor:
    """Who is calling, with their rate limit spent; installed by the app as ``identify_caller``
    (``kit.auth.current_actor``)."""
    actor = _identify(request, session, body)
    if actor.kind != "machine":  # a machine's allowance is checked inside _machine_actor
        get_platform(request).check_rate(actor, request.client.host if request.client else None)
    return actor


def _identify(request: Request, session: Session, body: bytes) -> Actor:
    if apps_service.is_signed(request.headers):
        return _machine_actor(request, session, body)
    token = _bearer(request)
    if token is None:
        return Actor.anonymous(Channel.WEBSITE)
    try:
        return token_actor(session, token, resident_channel(request))
    except Unauthorized:
        if token == request.cookies.get(RESIDENT_COOKIE) and "authorization" not in request.headers:
            return Actor.anonymous(Channel.WEBSITE)  # a stale page sign-in: carry on as a visitor
        raise


def token_actor(session: Session, token: str, resident_channel: Channel) -> Actor:
    """The staff member or resident a bearer token names, on the channel they act through: a staff
    member's by role (window or workstation), a resident's as given. ``Unauthorized`` when the token
    is unknown, expired or its account disabled."""
    actor = service.actor_for_token(session, token, Channel.WINDOW)  # the channel is filled in below
    if actor.kind == "resident":
        return service.resident_actor(actor.id, resident_channel)
    role = next(iter(actor.roles))
    return replace(actor, channel=_ROLE_CHANNEL.get(Role(role), Channel.WINDOW))


def page_actor(request: Request, session: Session, kind: str) -> Actor | None:
    """Who a page's sign-in cookie names: ``ehc_staff`` for a staff page (``kind`` "staff"),
    ``ehc_resident`` for a resident's page (``kind`` "resident", on the website channel). The same
    resolution as the API's (:func:`token_actor`); None when there is no such cookie, or it is unknown,
    expired, or names someone of another kind (the page then sends the browser to sign in)."""
    token = request.cookies.get(STAFF_COOKIE if kind == "staff" else RESIDENT_COOKIE)
    if not token:
        return None
    try:
        actor = token_actor(session, token, Channel.WEBSITE)
    except Unauthorized:
        return None
    return actor if actor.kind == kind else None


# -- who may manage staff accounts ------------------------------------------------------------
# An institution's admin manages the staff of their institution (a platform admin any institution's);
# the platform admin manages the health commission's own staff. Which institutions an admin reaches is
# the institution registry's rule (``institutions.service.managed_institution``): out of reach is 404.

StaffAdmin = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]
CommissionAdmin = Annotated[Ctx, Depends(require_roles(Role.PLATFORM_ADMIN))]


@dataclass
class StaffScope:
    """A request's unit of work together with the institution of the path, whose staff it manages."""

    ctx: Ctx
    institution_id: str


def _managed_staff(institution_id: str, ctx: StaffAdmin) -> StaffScope:
    return StaffScope(ctx, institutions.managed_institution(ctx, institution_id).id)


ManagedStaff = Annotated[StaffScope, Depends(_managed_staff)]
