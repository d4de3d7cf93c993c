"""Signing in: a text-message code (or a password), signing out, and the development SMS outbox."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ...accounts import service as accounts
from ...accounts.auth import RESIDENT_COOKIE, clear_resident_cookie, page_actor, set_resident_cookie
from ...identity.service import mask_phone, normalise_phone
from ...kit.clock import unix_now
from ...kit.context import Ctx
from ...kit.errors import NotFound, Problem
from .. import forms, i18n
from ..core import CHINA, PageRoute, WebsiteCtx
from ..forms import FormState, page, require_csrf, see_other
from .common import PHONE_CONTEXT, PHONE_COOKIE, PHONE_MAX_AGE, _development, _safe_next


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- signing in -------------------------------------------------------------------------------

def _sealed_phone(ctx: Ctx, phone: str) -> str:
    return ctx.vault.seal(f"{phone}|{int(unix_now()) + PHONE_MAX_AGE}", PHONE_CONTEXT)


def _phone_from_cookie(request: Request, ctx: Ctx) -> str | None:
    sealed = request.cookies.get(PHONE_COOKIE)
    if not sealed:
        return None
    try:
        phone, _, expiry = ctx.vault.open(sealed, PHONE_CONTEXT).partition("|")
    except Exception:  # noqa: BLE001 - forged, from another key, or garbage: as if absent
        return None
    return phone if expiry.isdigit() and int(expiry) > unix_now() else None


def _with_phone_cookie(response: Response, request: Request, ctx: Ctx, phone: str) -> Response:
    response.set_cookie(PHONE_COOKIE, _sealed_phone(ctx, phone), max_age=PHONE_MAX_AGE, path="/sign-in",
                        httponly=True, samesite="lax",
                        secure=not _development(ctx) or request.url.scheme == "https")
    return response


def _signed_in(request: Request, ctx: Ctx, signed: accounts.SignedIn, next_page: str) -> Response:
    answer = see_other(request, _safe_next(next_page))
    set_resident_cookie(answer, request, signed.token, signed.expires_in, production=not _development(ctx))
    answer.delete_cookie(PHONE_COOKIE, path="/sign-in", httponly=True, samesite="lax")
    return answer


def _sign_in_page(request: Request, ctx: Ctx, *, state: FormState | None = None, status_code: int = 200,
                  next_page: str = "", need_last4: bool = False) -> HTMLResponse:
    return page(request, ctx, "sign_in.html", status_code, nav="sign_in", state=state or FormState(),
                next_page=_safe_next(next_page) if next_page else "", need_last4=need_last4)


def _refusal(t: i18n.Translator, problem: Problem, values: dict[str, str], form: str,
             fields: tuple[str, ...]) -> FormState:
    """A sign-in refusal in words; a wrong code says how many tries are left."""
    state = FormState(values=values, form=form)
    params = forms.problem_params(problem)
    code = problem.code
    if code == "otp_invalid" and "attempts_left" in problem.extra:
        code = "otp_wrong"
    elif code == "sign_in_failed":
        code = "resident_sign_in_failed"
    field = {"phone_malformed": "phone", "otp_wrong": "code", "document_last4_mismatch": "document_last4",
             "resident_choice_required": "document_last4", "password_length": "password"}.get(code, "")
    state.add(field if field in fields else "", forms.message(t, code, params, problem.detail))
    return state


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, ctx: WebsiteCtx, next: str = "") -> Response:  # noqa: A002
    if page_actor(request, ctx.session, "resident") is not None:
        return see_other(request, _safe_next(next))
    return _sign_in_page(request, ctx, next_page=next)


@router.post("/sign-in/send-code", response_class=HTMLResponse)
def send_code(
    request: Request,
    ctx: WebsiteCtx,
    phone: Annotated[str, Form(max_length=32)] = "",
    resend: Annotated[str, Form(max_length=1)] = "",
    next: Annotated[str, Form(max_length=300)] = "",  # noqa: A002
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    if resend:  # "send a new code" on the code page: the number waiting in the sealed cookie
        phone = _phone_from_cookie(request, ctx) or ""
        if not phone:
            return see_other(request, "/sign-in", "sign_in_again")
    code_page = "/sign-in/code" + (f"?next={quote(_safe_next(next), safe='/')}" if next else "")
    try:
        normalised = normalise_phone(phone)
        accounts.request_code(ctx, normalised)
    except Problem as problem:
        ctx.session.rollback()
        if problem.code == "otp_rate_limited":  # a code sent under a minute ago is still good: go and type it
            answer = see_other(request, code_page, "code_recently_sent", str(problem.extra.get("retry_after", 60)))
            return _with_phone_cookie(answer, request, ctx, normalised)
        state = _refusal(t, problem, {"phone": phone}, "code", ("phone",))
        return _sign_in_page(request, ctx, state=state, status_code=problem.status, next_page=next)
    answer = see_other(request, code_page, "code_sent" if not resend else "code_resent")
    return _with_phone_cookie(answer, request, ctx, normalised)


def _code_page(request: Request, ctx: Ctx, phone: str, *, state: FormState | None = None, status_code: int = 200,
               next_page: str = "", need_last4: bool = False) -> HTMLResponse:
    development = _development(ctx) and ctx.settings.sms_sender == "outbox"
    return page(request, ctx, "sign_in_code.html", status_code, nav="sign_in", state=state or FormState(),
                masked_phone=mask_phone(phone), next_page=_safe_next(next_page) if next_page else "",
                need_last4=need_last4, development=development)


@router.get("/sign-in/code", response_class=HTMLResponse)
def code_form(request: Request, ctx: WebsiteCtx, next: str = "") -> Response:  # noqa: A002
    phone = _phone_from_cookie(request, ctx)
    if phone is None:
        return see_other(request, "/sign-in")
    return _code_page(request, ctx, phone, next_page=next)


@router.post("/sign-in/code", response_class=HTMLResponse)
def sign_in_with_code(
    request: Request,
    ctx: WebsiteCtx,
    code: Annotated[str, Form(max_length=12)] = "",
    document_last4: Annotated[str, Form(max_length=8)] = "",
    next: Annotated[str, Form(max_length=300)] = "",  # noqa: A002
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, ctx, csrf_token)
    phone = _phone_from_cookie(request, ctx)
    if phone is None:
        return see_other(request, "/sign-in", "sign_in_again")
    t = i18n.for_request(request)
    values = {"code": code.strip(), "document_last4": document_last4.strip().upper()}
    if not values["code"]:
        state = forms.missing(t, values, ("code",))
        return _code_page(request, ctx, phone, state=state, status_code=422, next_page=next,
                          need_last4=bool(document_last4))
    try:
        signed = accounts.sign_in_with_code(ctx, phone, values["code"], values["document_last4"] or None)
    except Problem as problem:
        ctx.session.rollback()
        need_last4 = problem.code in ("resident_choice_required", "document_last4_mismatch") or bool(document_last4)
        # After a refusal that did not use the code up, keep it in the box: the resident only adds what is missing.
        keep = values if problem.code == "resident_choice_required" else {"document_last4": values["document_last4"]}
        state = _refusal(t, problem, keep, "code", ("code", "document_last4"))
        return _code_page(request, ctx, phone, state=state, status_code=problem.status, next_page=next,
                          need_last4=need_last4)
    return _signed_in(request, ctx, signed, next)


@router.post("/sign-in/password", response_class=HTMLResponse)
def sign_in_with_password(
    request: Request,
    ctx: WebsiteCtx,
    phone: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    document_last4: Annotated[str, Form(max_length=8)] = "",
    next: Annotated[str, Form(max_length=300)] = "",  # noqa: A002
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    values = {"password_phone": phone, "document_last4": document_last4.strip().upper()}
    state = forms.missing(t, {**values, "password": password}, ("password_phone", "password"), "password")
    if state.failed:
        state.values = values
        return _sign_in_page(request, ctx, state=state, status_code=422, next_page=next,
                             need_last4=bool(document_last4))
    try:
        signed = accounts.sign_in_with_password(ctx, normalise_phone(phone), password,
                                                 values["document_last4"] or None)
    except Problem as problem:
        ctx.session.rollback()
        need_last4 = problem.code == "resident_choice_required" or bool(document_last4)
        state = _refusal(t, problem, values, "password", ("document_last4",))
        if problem.code == "phone_malformed":
            state = FormState(values=values, form="password")
            state.add("password_phone", forms.message(t, problem.code, {}, problem.detail))
        return _sign_in_page(request, ctx, state=state, status_code=problem.status, next_page=next,
                             need_last4=need_last4)
    return _signed_in(request, ctx, signed, next)


@router.post("/sign-out")
def sign_out(request: Request, ctx: WebsiteCtx, csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    token = request.cookies.get(RESIDENT_COOKIE)
    if token:
        accounts.sign_out(ctx.session, token)
    answer = see_other(request, "/sign-in", "signed_out")
    clear_resident_cookie(answer)
    return answer


@router.get("/dev/outbox", response_class=HTMLResponse)
def dev_outbox(request: Request, ctx: WebsiteCtx) -> HTMLResponse:
    """Development only: the text messages the outbox sender "sent" (the codes), newest first."""
    if not _development(ctx):
        raise NotFound("No such page.", code="not_found")
    messages = [{"phone": mask_phone(m.phone), "text": m.text,
                 "at": m.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")}
                for m in accounts.outbox(ctx.session, ctx.vault, limit=20)]
    return page(request, ctx, "dev_outbox.html", messages=messages, sender=ctx.settings.sms_sender)
