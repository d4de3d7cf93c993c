"""Server-rendered pages (Jinja2 templates, one stylesheet, a little vanilla JS), per audience:

- ``public``: the public website (home, applying for a card);
- ``resident/``: a signed-in resident (sign-in, my card and code, family, reporting lost, PIN, access log);
- ``staff/``: staff (sign-in, card printing, institution admin and app keys, master-index review,
  card-use monitoring).

``core`` renders pages and turns failures into pages; ``forms`` the forms' CSRF, notices and
refusals; ``i18n`` picks the language and provides ``t(key)``; ``security`` holds the CSRF token and
the card cookie. :func:`mount` adds every page router and ``/static`` to the app.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..kit.http import STATUS_CODES, request_id
from . import public, resident, staff
from .core import STATIC, error_page, log

# Where the API, the FHIR door and the verifiers' files live: their refusals stay problem+json.
MACHINE_PATHS = ("/api/", "/fhir", "/.well-known/", "/openapi.json", "/docs/assets/", "/static/", "/healthz")


def wants_page(request: Request) -> bool:
    """A browser asking for a page (outside the machine paths, accepting HTML) gets its failure as a
    page in its language; everyone else keeps problem+json."""
    return not request.url.path.startswith(MACHINE_PATHS) and "text/html" in request.headers.get("accept", "")


def mount(app: FastAPI) -> None:
    app.include_router(public.router)
    app.include_router(staff.router)
    app.include_router(resident.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _pages_for_browsers(app)


def _pages_for_browsers(app: FastAPI) -> None:
    """An unknown URL, a method not allowed or an unexpected failure outside a page route (``PageRoute``
    makes its own failures pages) answers a browser with the 404/405/500 page, not JSON."""
    as_problem = app.exception_handlers[StarletteHTTPException]
    unexpected = app.exception_handlers[Exception]

    async def http_failure(request: Request, exc: StarletteHTTPException):  # noqa: ANN202
        if not wants_page(request):
            return await as_problem(request, exc)
        page = error_page(request, exc.status_code, STATUS_CODES.get(exc.status_code, "bad_request"))
        for name, value in (exc.headers or {}).items():
            page.headers.setdefault(name, value)
        return page

    async def failure(request: Request, exc: Exception):  # noqa: ANN202
        if not wants_page(request):
            return await unexpected(request, exc)
        log.exception("unhandled error", extra={"request_id": request_id(request)})
        return error_page(request, 500, "internal_error")

    app.add_exception_handler(StarletteHTTPException, http_failure)
    app.add_exception_handler(Exception, failure)


__all__ = ["mount"]
