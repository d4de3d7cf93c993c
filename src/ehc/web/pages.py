"""The public web pages: home, apply for a card, see the card just issued.

A third door into the same services as the API and the CLI: the apply form checks its input
against the API's own schema (``RegistrationIn``), then calls ``cards.service.register`` as an
anonymous website actor. Business rules and their error codes come from the service; this module
only turns them into localized, accessible HTML.
"""

from __future__ import annotations

import logging
from html import escape
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..cards import service
from ..cards.models import CardStatus
from ..accounts.auth import RESIDENT_COOKIE
from ..cards.schemas import RegistrationIn, card_out
from ..identity import LABELS, DocumentType
from ..kit.clock import CHINA
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.deps import DbSession, get_platform
from ..kit.errors import Problem
from ..kit.http import request_id
from . import i18n, security

log = logging.getLogger("ehc.web")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# The form's fields, in the order they are shown (also the order of the error summary).
FIELDS = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address")
# Where a problem's field name has no input of its own, the input it is shown against.
FIELD_ALIASES = {"region_code": "document_number"}
SEXES = ("1", "2")
NOTICE_COOKIE = "ehc_notice"  # one-shot: "created" or "existing", read by /card after the redirect

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Pages send no inline script or style, so the policy can forbid both.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Vary": "Accept-Language, Cookie",
}


# -- rendering --------------------------------------------------------------------------------

def render(request: Request, template: str, status_code: int = 200, *, private: bool = False,
           **context: Any) -> HTMLResponse:
    """Render a page in the request's language; remember a language chosen with ``?lang=``."""
    lang = i18n.negotiate(request)
    t = i18n.translator(lang)
    other = "en" if lang == "zh" else "zh"
    root = request.scope.get("root_path", "")
    context.setdefault("nav", None)
    context.setdefault("area", "public")
    context.setdefault("account", None)
    context.setdefault("flash", None)
    context.setdefault("wide", False)
    context.setdefault("back", None)
    context.setdefault("csrf_field", security.CSRF_FIELD)
    context.setdefault("csrf_token", "")
    html = env.get_template(template).render(
        t=t,
        lang=lang,
        path=request.url.path,
        switch_url=f"{root}{request.url.path}?lang={other}",
        switch_lang=i18n.HTML_LANG[other],
        static=lambda name: f"{root}/static/{name}?v={__version__}",
        url=lambda route: f"{root}{route}",
        resident_cookie=bool(request.cookies.get(RESIDENT_COOKIE)),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    response.headers["Content-Language"] = t.html_lang
    # Pages with personal data or a CSRF token must not sit in shared or back-button caches.
    response.headers["Cache-Control"] = "no-store" if private else "no-cache"
    if i18n.from_query(request):
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, path="/", samesite="lax",
                            secure=request.url.scheme == "https")
    return response


def error_page(request: Request, status_code: int, code: str, detail: str | None = None, *,
               params: dict[str, Any] | None = None, back: tuple[str, str] | None = None) -> HTMLResponse:
    """A page for a failure: its title by the problem's code (``error_page.title_<code>``) or its
    status, its message by the code (``errors.<code>``, filled with ``params``). ``back`` is a
    (path, locale key) link offered first; by default staff pages lead back to the staff area."""
    t = i18n.translator(i18n.negotiate(request))
    key = f"errors.{code}"
    params = dict(params or {})
    if isinstance(params.get("seconds"), int):
        params.setdefault("wait", t.duration(params["seconds"]))
    message = t(key, **params) if t.has(key) else (detail or t("errors.generic"))
    title_key = f"error_page.title_{code}" if t.has(f"error_page.title_{code}") else f"error_page.title_{status_code}"
    title = t(title_key) if t.has(title_key) else t("error_page.title")
    if back is None and request.url.path.startswith("/staff"):
        back = ("/staff", "error_page.back_to_staff")
    elif back is None and request.url.path.startswith(("/me", "/sign-in")):
        back = ("/me", "error_page.back_to_me")
    try:
        return render(request, "error.html", status_code, private=True, title=title, message=message,
                      request_id=request_id(request), back=back,
                      area="staff" if request.url.path.startswith("/staff") else "public")
    except Exception:  # noqa: BLE001 - the error page itself must not fail into a trace
        log.exception("error page failed", extra={"request_id": request_id(request)})
        page = f'<!doctype html><html lang="{t.html_lang}"><title>{escape(title)}</title><h1>{escape(title)}</h1>' \
               f"<p>{escape(message)}</p><p>{escape(request_id(request))}</p></html>"
        return HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)


class Redirect(Exception):  # noqa: N818 - not an error: where a page sends the browser instead
    """Raised by a page's dependency to send the browser elsewhere (e.g. to sign in first)."""

    def __init__(self, location: str, *, clear_cookies: tuple[str, ...] = ()) -> None:
        super().__init__(location)
        self.location = location
        self.clear_cookies = clear_cookies

    def response(self, request: Request) -> RedirectResponse:
        answer = RedirectResponse(f"{request.scope.get('root_path', '')}{self.location}", status_code=303)
        for name in self.clear_cookies:
            answer.delete_cookie(name, path="/", httponly=True, samesite="lax")
        answer.headers["Cache-Control"] = "no-store"
        return answer


class PageRoute(APIRoute):
    """A route whose failures are pages, not problem+json: a resident never sees a trace or JSON.

    Whatever the page's unit of work wrote is rolled back before the error page is shown.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Redirect as redirect:
                return redirect.response(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a page
                session = getattr(request.state, "db_session", None)
                if session is not None:
                    try:
                        await run_in_threadpool(session.rollback)
                    except Exception:  # noqa: BLE001 - a dead connection must not hide the page
                        log.exception("rollback failed", extra={"request_id": request_id(request)})
                if isinstance(exc, Problem):
                    page = error_page(request, exc.status, exc.code, exc.detail, params=problem_params(exc))
                    if isinstance(exc.extra.get("retry_after"), int):
                        page.headers["Retry-After"] = str(exc.extra["retry_after"])
                    return page
                if isinstance(exc, RequestValidationError):
                    return error_page(request, 400, "bad_request")
                if isinstance(exc, StarletteHTTPException):
                    return error_page(request, exc.status_code, "bad_request" if exc.status_code < 500 else
                                      "internal_error")
                log.exception("page failed", extra={"request_id": request_id(request)})
                return error_page(request, 500, "internal_error")

        return page_handler


def problem_params(problem: Problem) -> dict[str, Any]:
    """What a message may say about a problem: its extra fields, and ``retry_after`` (seconds) also
    in whole minutes, rounded up."""
    params = {k: v for k, v in problem.extra.items() if isinstance(v, (str, int))}
    retry = problem.extra.get("retry_after")
    if isinstance(retry, int):
        params["seconds"] = retry
        params["minutes"] = max(1, -(-retry // 60))
    return params


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def website_ctx(request: Request, session: DbSession) -> Ctx:
    """The same Ctx the API builds for an anonymous caller, on the public website channel."""
    request.state.db_session = session
    platform = get_platform(request)
    actor = Actor.anonymous(Channel.WEBSITE)
    platform.check_rate(actor, client_address(request))  # the API's allowance for anonymous callers
    return platform.ctx(session, actor)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


WebsiteCtx = Annotated[Ctx, Depends(website_ctx)]


# -- pages ------------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html", nav="home")


def _document_types(lang: str) -> list[tuple[str, str]]:
    column = 1 if lang == "zh" else 0
    return [(kind.value, LABELS[kind][column]) for kind in DocumentType]


def _apply_form(request: Request, ctx: Ctx, values: dict[str, str], errors: list[dict] | None = None,
                status_code: int = 200, form_error: str | None = None) -> HTMLResponse:
    token, new = security.csrf_token(request, ctx.vault)
    lang = i18n.negotiate(request)
    t = i18n.translator(lang)
    field_errors: dict[str, list[str]] = {}
    summary: list[tuple[str, str]] = []
    for error in errors or []:
        field = FIELD_ALIASES.get(error.get("field", ""), error.get("field", ""))
        text = _message(t, error, values)
        if field in FIELDS:
            if text not in field_errors.setdefault(field, []):
                field_errors[field].append(text)
        elif text not in (s[1] for s in summary):
            summary.append(("", text))
    summary = [(f, m) for f in FIELDS for m in field_errors.get(f, [])] + summary
    if form_error:
        summary.insert(0, ("", form_error))
    response = render(
        request, "apply.html", status_code, private=True, nav="apply",
        values=values, field_errors=field_errors, summary=summary, csrf_field=security.CSRF_FIELD,
        csrf_token=token, document_types=_document_types(lang), sexes=SEXES,
    )
    if new:
        security.set_csrf_cookie(response, request, token)
    return response


def _message(t: i18n.Translator, error: dict, values: dict[str, str]) -> str:
    """A field error in the page's language: by its stable code, else the service's English text."""
    code = error.get("code", "")
    key = f"errors.{code}"
    if not t.has(key):
        return error.get("message") or t("errors.generic")
    params = dict(error.get("params") or {})
    if code == "document_number_malformed":
        kind = values.get("document_type", "")
        fmt = f"document_formats.{kind}"
        params["format"] = t(fmt) if t.has(fmt) else ""
    return t(key, **params).strip()


@router.get("/apply", response_class=HTMLResponse)
def apply_form(request: Request, ctx: WebsiteCtx) -> HTMLResponse:
    return _apply_form(request, ctx, {"document_type": DocumentType.RESIDENT_ID.value})


def _schema_errors(exc: ValidationError) -> list[dict]:
    """The API schema's complaints, as field errors with the codes the locale files know."""
    errors = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err.get("loc", ()))
        field = {("document", "type"): "document_type", ("document", "number"): "document_number"}.get(
            loc, loc[0] if loc else "")
        kind = err.get("type", "")
        if kind == "string_too_long":
            code, params = "too_long", {"max": (err.get("ctx") or {}).get("max_length", "")}
        elif field == "birth_date":
            code, params = "birth_date_malformed", {}
        else:
            code, params = "invalid", {}
        errors.append({"field": field, "code": code, "message": err.get("msg", ""), "params": params})
    return errors


@router.post("/apply", response_class=HTMLResponse)
def apply_submit(
    request: Request,
    ctx: WebsiteCtx,
    name: Annotated[str, Form()] = "",
    document_type: Annotated[str, Form()] = "",
    document_number: Annotated[str, Form()] = "",
    sex: Annotated[str, Form()] = "",
    birth_date: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not security.csrf_valid(request, ctx.vault, csrf_token):
        return error_page(request, 403, "csrf_failed")
    values = {"name": name, "document_type": document_type, "document_number": document_number, "sex": sex,
              "birth_date": birth_date, "phone": phone, "address": address}
    try:
        body = RegistrationIn(
            name=name,
            document={"type": document_type, "number": document_number},
            sex=sex or None,
            birth_date=birth_date or None,
            phone=phone or None,
            address=address or None,
        )
    except ValidationError as exc:
        return _apply_form(request, ctx, values, _schema_errors(exc), 422)
    try:
        issued = service.register(ctx, service.Registration(
            name=body.name,
            document_type=body.document.type,
            document_number=body.document.number,
            sex=body.sex,
            birth_date=body.birth_date,
            phone=body.phone,
            address=body.address,
        ))
        # Committed here, not after the answer: the card must exist before the browser is told so.
        ctx.session.commit()
    except Problem as problem:
        ctx.session.rollback()  # nothing half-written, whatever the service got to
        form_error = None
        if not problem.errors:
            key = f"errors.{problem.code}"
            t = i18n.translator(i18n.negotiate(request))
            form_error = t(key) if t.has(key) else problem.detail
        return _apply_form(request, ctx, values, problem.errors, problem.status, form_error)
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/card", status_code=303)
    security.set_card_cookie(response, request, ctx.vault, issued.card.ehc_id)
    response.set_cookie(NOTICE_COOKIE, "created" if issued.created else "existing", max_age=60, path="/card",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/card", response_class=HTMLResponse)
def card_page(request: Request, ctx: WebsiteCtx) -> HTMLResponse:
    ehc_id = security.card_from_cookie(ctx.vault, request.cookies.get(security.CARD_COOKIE))
    card = None
    if ehc_id is not None:
        try:
            card = service.get_card(ctx, ehc_id)
        except Problem:  # e.g. the database was reset since the cookie was made
            card = None
    if card is None:
        return render(request, "card.html", private=True, nav="card", card=None, notice=None)
    lang = i18n.negotiate(request)
    t = i18n.translator(lang)
    person, details, identifiers = service.holder(ctx, card, purpose="card.view")
    out = card_out(card, person, details, identifiers)  # masked: the same view window staff get
    holder = out.holder
    kind = DocumentType(holder.document_type) if holder.document_type else None
    issued = out.issued_at.astimezone(CHINA).date()
    view = {
        "ehc_id": out.ehc_id,
        "ehc_id_groups": [out.ehc_id[i:i + 8] for i in range(0, len(out.ehc_id), 8)],
        "status": out.status,
        "status_label": t(f"status.{out.status}"),
        "name": holder.name or t("card.unnamed"),
        "document_label": LABELS[kind][1 if lang == "zh" else 0] if kind else "",
        "document_number": holder.document_number or "",
        "sex": t(f"sex.{holder.sex}") if t.has(f"sex.{holder.sex}") else holder.sex,
        "issued": t.date(issued),
        "issued_iso": issued.isoformat(),
        "verifier": _verifier_label(t, out.verifier),
        "pending": out.status == CardStatus.PENDING_REVIEW.value,
    }
    notice = request.cookies.get(NOTICE_COOKIE)
    response = render(request, "card.html", private=True, nav="card", card=view,
                      notice=notice if notice in ("created", "existing") else None)
    if notice is not None:
        response.delete_cookie(NOTICE_COOKIE, path="/card")
    return response


def _verifier_label(t: i18n.Translator, verifier: str | None) -> str:
    key = f"verifier.{verifier or 'none'}"
    return t(key) if t.has(key) else (verifier or t("verifier.none"))


def mount(app: FastAPI) -> None:
    from . import keys, resident, staff  # they build on this module's rendering and error pages

    app.include_router(router)
    app.include_router(staff.router)
    app.include_router(keys.router)
    app.include_router(resident.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["mount", "render", "router"]
