"""What every signed-in page shares: the CSRF-carrying page, one-shot notices after a redirect, and
turning a service's problem into localized messages on a form.

Forms follow POST-redirect-GET: a form that worked answers 303 to the page that shows the result,
with a one-shot notice (``ehc_flash``, read and deleted by the next page); a form that did not work
is shown again straight away with its values and its errors, under the problem's status code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..kit.context import Ctx
from ..kit.errors import Forbidden, Problem
from . import i18n, security
from .core import problem_params, render

FLASH_COOKIE = "ehc_flash"
_FLASH_CODE = re.compile(r"[a-z][a-z0-9_]{0,40}")


# -- notices after a redirect -----------------------------------------------------------------

def see_other(request: Request, path: str, flash: str | None = None, value: str = "") -> RedirectResponse:
    """303 to ``path`` (a path on this site), carrying a one-shot notice ``flash.<flash>``."""
    answer = RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)
    answer.headers["Cache-Control"] = "no-store"
    if flash is not None:
        answer.set_cookie(FLASH_COOKIE, f"{flash}|{quote(value[:100], safe='')}", max_age=60, path="/",
                          httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return answer


def _flash(request: Request, t: i18n.Translator) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    code, _, value = raw.partition("|")
    if not _FLASH_CODE.fullmatch(code) or not t.has(f"flash.{code}"):
        return None
    return t(f"flash.{code}", value=unquote(value)[:100])


# -- pages with forms -------------------------------------------------------------------------

def page(request: Request, ctx: Ctx, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A private page (never cached) whose forms carry this browser's CSRF token, showing the
    notice left by the previous form, if any."""
    token, new = security.csrf_token(request, ctx.vault)
    t = i18n.translator(i18n.negotiate(request))
    notice = _flash(request, t)
    response = render(request, template, status_code, private=True, csrf_field=security.CSRF_FIELD,
                      csrf_token=token, flash=notice, **context)
    if new:
        security.set_csrf_cookie(response, request, token)
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="lax")
    return response


def require_csrf(request: Request, ctx: Ctx, submitted: str) -> None:
    """Refuse a form that did not come from one of our pages (403 page, nothing done)."""
    if not security.csrf_valid(request, ctx.vault, submitted):
        raise Forbidden("The form's security token is missing or wrong.", code="csrf_failed")


# -- problems as messages ---------------------------------------------------------------------

def message(t: i18n.Translator, code: str, params: dict[str, Any] | None = None, fallback: str | None = None) -> str:
    """The localized message for a problem code, else the service's own (English) words."""
    key = f"errors.{code}"
    params = dict(params or {})
    if isinstance(params.get("seconds"), int) and "wait" not in params:
        params["wait"] = t.duration(params["seconds"])
    if t.has(key):
        return t(key, **params).strip()
    return fallback or t("errors.generic")


@dataclass
class FormState:
    """A form shown again: what was typed, and what is wrong with it (per field, and overall)."""

    values: dict[str, str] = field(default_factory=dict)
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    summary: list[tuple[str, str]] = field(default_factory=list)  # (field id or "", message)
    form: str = ""  # which form of the page the errors belong to

    def add(self, field_name: str, text: str) -> None:
        if field_name:
            messages = self.field_errors.setdefault(field_name, [])
            if text not in messages:
                messages.append(text)
        if (field_name, text) not in self.summary:
            self.summary.append((field_name, text))

    @property
    def failed(self) -> bool:
        return bool(self.summary)


def problem_state(t: i18n.Translator, problem: Problem, values: dict[str, str], *, form: str = "",
                  fields: tuple[str, ...] = (), aliases: dict[str, str] | None = None,
                  codes: dict[str, str] | None = None, code_fields: dict[str, str] | None = None) -> FormState:
    """A service's refusal as a form state: its field errors against the form's inputs (``fields``,
    a problem's field name mapped through ``aliases``), anything else in the summary. ``codes``
    renames a code whose general message does not fit this form (a department's ``name_invalid``
    is not about a person's name); ``code_fields`` puts a problem that names no field against the
    input it is about (``username_taken`` against ``username``)."""
    state = FormState(values=values, form=form)
    params = problem_params(problem)
    codes = codes or {}
    for error in problem.errors:
        name = (aliases or {}).get(error.get("field", ""), error.get("field", ""))
        code = codes.get(error.get("code", ""), error.get("code", ""))
        text = message(t, code, {**params, **(error.get("params") or {})}, error.get("message"))
        state.add(name if name in fields else "", text)
    if not problem.errors:
        name = (code_fields or {}).get(problem.code, "")
        state.add(name if name in fields else "", message(t, codes.get(problem.code, problem.code), params, problem.detail))
    return state


def missing(t: i18n.Translator, values: dict[str, str], required: tuple[str, ...], form: str = "") -> FormState:
    """The required fields left empty (the browser checks first; this is for those that do not)."""
    state = FormState(values=values, form=form)
    for name in required:
        if not values.get(name, "").strip():
            state.add(name, t("errors.required"))
    return state
