"""What every resident page shares: who is signed in (the ``ehc_resident`` cookie), the page frame,
where a page may send the browser next."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from ...accounts.auth import RESIDENT_COOKIE, page_actor
from ...kit.auth import resident_only
from ...kit.context import Ctx
from ...kit.deps import DbSession, get_platform
from ...kit.http import safe_local_path
from .. import i18n
from ..core import Redirect, client_address
from ..forms import page


PHONE_COOKIE = "ehc_sign_in_phone"
PHONE_CONTEXT = "web.sign-in-phone"
PHONE_MAX_AGE = 10 * 60  # the code lives 5 minutes; room to ask for a second one
FAMILY_FIELDS = ("relation", "name", "document_type", "document_number", "sex", "birth_date", "phone")
LOST_REASONS = {"lost": "card or phone lost", "stolen": "stolen", "other": "other"}  # stored in the card's history
LOG_PAGE = 30


def _safe_next(target: str | None) -> str:
    """Only a resident page of this site: never an open redirect."""
    return safe_local_path(target, within="/me", default="/me")


def _development(ctx: Ctx) -> bool:
    return ctx.settings.environment != "production"


# -- who is signed in -------------------------------------------------------------------------

def signed_in_resident(request: Request, session: DbSession) -> Ctx:
    request.state.db_session = session
    token = request.cookies.get(RESIDENT_COOKIE)
    actor = page_actor(request, session, "resident")  # the API's resolution of the same token
    if actor is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = "/sign-in" if target == "/me" else f"/sign-in?next={quote(target, safe='/')}"
        raise Redirect(location, clear_cookies=(RESIDENT_COOKIE,) if token else ())
    platform = get_platform(request)
    platform.check_rate(actor, client_address(request))  # the API's allowance per signed-in person
    return resident_only(platform.ctx(session, actor))  # the resident API's own rule


ResidentPage = Annotated[Ctx, Depends(signed_in_resident)]


def resident_page(request: Request, ctx: Ctx, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    t = i18n.for_request(request)
    return page(request, ctx, template, status_code, area="resident",
                account={"label": t("account.signed_in_resident"), "role": "", "sign_out": "/sign-out",
                         "admin": False}, **context)
