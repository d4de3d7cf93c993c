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

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import public, resident, staff
from .core import STATIC


def mount(app: FastAPI) -> None:
    app.include_router(public.router)
    app.include_router(staff.router)
    app.include_router(resident.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["mount"]
