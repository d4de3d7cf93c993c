"""What every page shares: the templates and their rendering with the security headers, error pages,
``PageRoute`` (a page's failures are pages, never JSON) with ``Redirect``, and the website visitor's
``Ctx``.

A page request is one unit of work, the API's (``kit.deps.DbSession``): committed before the answer
leaves, so a redirect after a change is never sent before the change is stored, and rolled back when
the page fails (``PageRoute``). Handlers never commit: one that catches a refusal to show its form
again first rolls back whatever the service got to (``staff.common.form_failed`` does)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from html import escape
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..accounts.auth import RESIDENT_COOKIE
from ..kit.codes import Channel
from ..kit.clock import CHINA
from ..kit.context import Actor, Ctx
from ..kit.deps import DbSession, get_platform
from ..kit.errors import Problem
from ..kit.http import request_id
from . import i18n, security


log = logging.getLogger("ehc.web")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def yuan(fen: int | None) -> str:
    """Money kept in integer fen, shown in yuan with two decimals: 35000 -> "¥350.00" (the ``yuan`` filter)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100}.{abs(fen) % 100:02d}"


env.filters["yuan"] = yuan

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
