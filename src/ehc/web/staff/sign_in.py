"""Staff sign-in and sign-out, and the staff home."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ...accounts import service as accounts
from ...accounts.auth import STAFF_COOKIE, page_actor
from ...kit.clock import CHINA
from ...kit.context import Ctx
from ...kit.errors import Problem
from .. import forms, i18n
from ..core import PageRoute, WebsiteCtx, client_address
from ..forms import FormState, page, require_csrf, see_other
from .common import StaffPage, _safe_next, institution_view, role_label, staff_page


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- sign-in ----------------------------------------------------------------------------------

def _sign_in_page(request: Request, ctx: Ctx, state: FormState | None = None, status_code: int = 200,
                  next_page: str = "") -> HTMLResponse:
    return page(request, ctx, "staff_sign_in.html", status_code, area="staff",
                state=state or FormState(), next_page=_safe_next(next_page) if next_page else "")


@router.get("/staff/sign-in", response_class=HTMLResponse)
def staff_sign_in_form(request: Request, ctx: WebsiteCtx, next: str = "") -> Response:  # noqa: A002
    if page_actor(request, ctx.session, "staff") is not None:
        return see_other(request, _safe_next(next))
    return _sign_in_page(request, ctx, next_page=next)


@router.post("/staff/sign-in", response_class=HTMLResponse)
def staff_sign_in(
    request: Request,
    ctx: WebsiteCtx,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=300)] = "",  # noqa: A002
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    values = {"username": username.strip()}
    state = forms.missing(t, {**values, "password": password}, ("username", "password"))
    if state.failed:
        state.values = values
        return _sign_in_page(request, ctx, state, 422, next)
    try:
        token, account = accounts.sign_in_staff(ctx, values["username"], password, client_address(request))
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(values=values)
        state.add("", forms.message(t, problem.code, forms.problem_params(problem), problem.detail))
        return _sign_in_page(request, ctx, state, problem.status, next)
    answer = see_other(request, _safe_next(next))
    production = ctx.settings.environment == "production"
    answer.set_cookie(STAFF_COOKIE, token, max_age=int(accounts.TOKEN_LIFETIME.total_seconds()), path="/",
                      httponly=True, samesite="lax", secure=production or request.url.scheme == "https")
    return answer


@router.post("/staff/sign-out")
def staff_sign_out(request: Request, ctx: WebsiteCtx, csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        accounts.revoke_token(ctx.session, token)
    answer = see_other(request, "/staff/sign-in", "signed_out")
    answer.delete_cookie(STAFF_COOKIE, path="/", httponly=True, samesite="lax")
    return answer


# -- staff home -------------------------------------------------------------------------------

@router.get("/staff", response_class=HTMLResponse)
def staff_home(request: Request, staff: StaffPage) -> HTMLResponse:
    t = i18n.for_request(request)
    account = staff.account
    return staff_page(request, staff, "staff_home.html", nav="staff_home", me={
        "display_name": account.display_name,
        "username": account.username,
        "role": role_label(t, account.role),
        "institution": institution_view(t, staff.institution) if staff.institution else None,
        "region_code": account.region_code,
        "failures_before_sign_in": account.failures_before_sign_in,
        "last_failure_at": (account.failure_last_before_sign_in.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
                            if account.failure_last_before_sign_in else ""),
    })
