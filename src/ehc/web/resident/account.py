"""Where my card was used (the history the staff pages promise residents), and my password (the one
``/sign-in`` offers): the same services as ``GET /api/v1/me/card-uses`` and ``POST /api/v1/me/password``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...accounts import service as accounts
from ...accounts.auth import RESIDENT_COOKIE
from ...institutions import service as institutions
from ...kit.codes import CHANNEL_LABELS
from ...kit.context import Ctx
from ...kit.errors import Problem
from ...qr import service as qr
from .. import forms, i18n
from ..core import CHINA, PageRoute
from ..forms import FormState, require_csrf, see_other
from .card import _target
from .common import ResidentPage, resident_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)
USES_PAGE = 100


@router.get("/me/uses", response_class=HTMLResponse)
def my_uses(request: Request, ctx: ResidentPage, member: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    """Where and for what my card (or a family member's I guard) was scanned, newest first."""
    t = i18n.for_request(request)
    target = _target(ctx, member)
    column = 1 if t.lang == "zh" else 0
    names: dict[str, str] = {}
    rows = []
    for use in qr.uses_of(ctx, target.card, limit=USES_PAGE):
        if use.institution_id and use.institution_id not in names:
            institution = institutions.find_institution(ctx.session, use.institution_id)
            names[use.institution_id] = institution.name if institution else use.institution_id
        at = use.at.astimezone(CHINA)
        channel = next((labels for code, labels in CHANNEL_LABELS.items() if code.value == use.channel), None)
        scene = f"my_uses.scene.{use.scene}"
        rows.append({
            "at_iso": at.isoformat(timespec="seconds"),
            "date": t.date(at.date()),
            "time": at.strftime("%H:%M"),
            "where": names.get(use.institution_id or "", "") or t("my_uses.online"),
            "channel": channel[column] if channel else use.channel,
            "scene": t(scene) if t.has(scene) else qr.SCENES.get(use.scene, use.scene),
            "code": t("my_uses.code_static" if use.code_type == 1 else "my_uses.code_dynamic"),
            "offline": bool(use.offline),
        })
    return resident_page(request, ctx, "me_uses.html", nav="uses", rows=rows, member=member,
                         relation=t(f"relations.{target.relation}") if target.relation else None)


def _password_page(request: Request, ctx: Ctx, state: FormState | None = None, status_code: int = 200) -> HTMLResponse:
    return resident_page(request, ctx, "me_password.html", status_code, nav="me", state=state or FormState(),
                         has_password=accounts.has_password(ctx, ctx.actor.id))


@router.get("/me/password", response_class=HTMLResponse)
def password_form(request: Request, ctx: ResidentPage) -> HTMLResponse:
    return _password_page(request, ctx)


@router.post("/me/password", response_class=HTMLResponse)
def set_password(
    request: Request,
    ctx: ResidentPage,
    new_password: Annotated[str, Form(max_length=200)] = "",
    confirm_password: Annotated[str, Form(max_length=200)] = "",
    current_password: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Set or change my password; my other sign-ins end, this one stays (``accounts.set_password``)."""
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    if new_password != confirm_password:
        state = FormState(form="password")
        state.add("confirm_password", t("my_password.mismatch"))
        return _password_page(request, ctx, state, 422)
    had = accounts.has_password(ctx, ctx.actor.id)
    try:
        accounts.set_password(ctx, ctx.actor.id, new_password, current_password=current_password or None,
                              keep_token=request.cookies.get(RESIDENT_COOKIE))
    except Problem as problem:
        ctx.session.rollback()  # a wrong current password was counted (and committed) before the refusal
        state = forms.problem_state(t, problem, {}, form="password",
                                    fields=("new_password", "current_password"),
                                    code_fields={"current_password_wrong": "current_password",
                                                 "current_password_required": "current_password",
                                                 "account_locked": "current_password"})
        return _password_page(request, ctx, state, problem.status)
    return see_other(request, "/me", "password_changed" if had else "password_set")
