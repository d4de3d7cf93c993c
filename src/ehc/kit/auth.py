"""The typed dependencies every domain's ``auth.py`` builds on: who is calling, as a ``Ctx``.

Telling who is calling (a signature, a token, a cookie) is the accounts domain's job
(``accounts.auth.identify_caller``); the app installs it once as ``app.state.identify_caller``
(``ehc.app``), so this module, and every domain's ``auth.py`` built on it, depends on no domain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from .context import Actor, Ctx
from .deps import DbSession, get_platform
from .errors import Forbidden, Unauthorized
from .roles import Role

# identify_caller(request, session, raw_body) -> Actor, with the caller's rate limit spent.
CallerIdentifier = Callable[[Request, object, bytes], Actor]


async def raw_body(request: Request) -> bytes:
    """The request's bytes exactly as received (cached by Starlette, so the endpoint still gets them)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def current_actor(request: Request, session: DbSession, body: RawBody) -> Actor:
    identify: CallerIdentifier = request.app.state.identify_caller
    return identify(request, session, body)


CurrentActor = Annotated[Actor, Depends(current_actor)]


# The dependencies below do no I/O: ``async`` so that they run on the event loop, not in a thread each.
async def context(request: Request, session: DbSession, actor: CurrentActor) -> Ctx:
    return get_platform(request).ctx(session, actor)


AnyCtx = Annotated[Ctx, Depends(context)]


def require_roles(*roles: Role | str):  # noqa: ANN201
    """A dependency that lets through callers holding one of ``roles`` (staff roles, or the
    ``HOSPITAL_SYSTEM`` pseudo-role of a signed machine caller), and nobody else."""
    allowed = frozenset(str(r) for r in roles)

    def check(ctx: Ctx) -> Ctx:
        if ctx.actor.kind == "anonymous":
            raise Unauthorized("Sign in as staff to do this.", code="unauthenticated")
        if not (ctx.actor.roles & allowed):
            raise Forbidden("Your role does not allow this.", code="role_not_allowed")
        return ctx

    async def dependency(ctx: AnyCtx) -> Ctx:
        return check(ctx)

    dependency.check = check  # the same rule, called directly (the staff pages apply it to their own unit of work)
    return dependency


def resident_only(ctx: Ctx) -> Ctx:
    """A signed-in resident, and nobody else (the residents' own API and pages)."""
    if ctx.actor.kind == "anonymous":
        raise Unauthorized("Sign in with your phone to see your card.", code="unauthenticated")
    if ctx.actor.kind != "resident":
        raise Forbidden("This is the residents' own API; staff use /api/v1/cards.", code="resident_only")
    return ctx


async def require_resident(ctx: AnyCtx) -> Ctx:
    """The dependency of the residents' own API (:func:`resident_only`)."""
    return resident_only(ctx)


require_resident.check = resident_only


ResidentCtx = Annotated[Ctx, Depends(require_resident)]
