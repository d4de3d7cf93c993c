"""Who may use the resident's own API: a signed-in resident, and nobody else.

What a resident may act on: their own card, and the cards of family members bound to them as their
guardian (``me/service.py``). Any other card answers 404 ``card_not_found``, exactly as a card that
does not exist, so the API never tells a resident whether a stranger's card exists.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..accounts.auth import AnyCtx
from ..kit.context import Ctx
from ..kit.errors import Forbidden, Unauthorized


def require_resident(ctx: AnyCtx) -> Ctx:
    if ctx.actor.kind == "anonymous":
        raise Unauthorized("Sign in with your phone to see your card.", code="unauthenticated")
    if ctx.actor.kind != "resident":
        raise Forbidden("This is the residents' own API; staff use /api/v1/cards.", code="resident_only")
    return ctx


Resident = Annotated[Ctx, Depends(require_resident)]
