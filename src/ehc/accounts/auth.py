"""Who is calling: a signed hospital system (apps/), a bearer token (staff) or nobody (the public
website). Typed dependencies."""

from __future__ import annotations

from dataclasses import dataclass
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


RESIDENT_COOKIE = service.RESIDENT_COOKIE
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


def _machine_actor(request: Request, body: bytes) -> Actor:
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
    # the nonce is spent (a refused request leaves nothing behind).
    platform = get_platform(request)
    return apps_service.admit(platform.db.engine, signed, before_claim=lambda actor: platform.check_rate(actor, None))


def identify_caller(request: Request, session: Session, body: bytes) -> Actor:
    """Who is calling, with their rate limit spent; installed by the app as ``identify_caller``
    (``kit.auth.current_actor``)."""
    actor = _identify(request, session, body)
    if actor.kind != "machine":  # a machine's allowance is checked inside _machine_actor
        get_platform(request).check_rate(actor, request.client.host if request.client else None)
    return actor


def _identify(request: Request, session: Session, body: bytes) -> Actor:
    if apps_service.is_signed(request.headers):
        return _machine_actor(request, body)
    token = _bearer(request)
    if token is None:
        return Actor.anonymous(Channel.WEBSITE)
    try:
        # The channel is filled in once the role is known.
        actor = service.actor_for_token(session, token, Channel.WINDOW)
    except Unauthorized:
        if token == request.cookies.get(RESIDENT_COOKIE) and "authorization" not in request.headers:
            return Actor.anonymous(Channel.WEBSITE)  # a stale page sign-in: carry on as a visitor
        raise
    if actor.kind == "resident":
        return service.resident_actor(actor.id, resident_channel(request))
    role = next(iter(actor.roles))
    return Actor(**{**actor.__dict__, "channel": _ROLE_CHANNEL.get(Role(role), Channel.WINDOW)})


# -- who manages staff accounts -------------------------------------------------------------------

# An institution's staff: its admin or a platform admin.
InstitutionAdmin = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]
# The health commission's own staff: platform admins.
CommissionAdmin = Annotated[Ctx, Depends(require_roles(Role.PLATFORM_ADMIN))]


@dataclass
class StaffScope:
    """A request's unit of work together with the institution named in its path, already checked."""

    ctx: Ctx
    institution_id: str


def _managed(institution_id: str, ctx: InstitutionAdmin) -> StaffScope:
    # The registry's rule: 404 for an institution out of the caller's reach, as if it did not exist.
    return StaffScope(ctx, institutions.managed_institution(ctx, institution_id).id)


# The institution of the path, whose staff the caller manages.
ManagedInstitution = Annotated[StaffScope, Depends(_managed)]
