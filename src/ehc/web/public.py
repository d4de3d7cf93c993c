"""The public website: the home page, applying for a card, the card page after applying, and finding
one's card again with the document and the card number (for a resident who gave no phone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ..cards import service
from ..cards.schemas import RegistrationIn, card_out
from ..cards.service import CardStatus
from ..identity.service import LABELS, DocumentType
from ..kit.context import Ctx
from ..kit.errors import Problem
from . import i18n, security
from .core import CHINA, PageRoute, WebsiteCtx, error_page, render


# The form's fields, in the order they are shown (also the order of the error summary).
FIELDS = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address")
# Where a problem's field name has no input of its own, the input it is shown against.
FIELD_ALIASES = {"region_code": "document_number"}
SEXES = ("1", "2")
NOTICE_COOKIE = "ehc_notice"  # one-shot: "created" or "existing", read by /card after the redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)


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
        text = field_message(t, error, values)
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


def field_message(t: i18n.Translator, error: dict, values: dict[str, str]) -> str:
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


def schema_errors(exc: ValidationError) -> list[dict]:
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
        return _apply_form(request, ctx, values, schema_errors(exc), 422)
    try:
        issued = service.register(ctx, service.registration_of(body))
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


# -- back to my card without a phone ----------------------------------------------------------------
# A resident who applied without a mobile number cannot sign in. Two ways back: at any service window
# (the clerk finds the card by the document and can add a phone), or here, with the document and a
# second proof only the holder has: the card number (EHC ID) shown after applying and on a printed
# code's label. Both must name the same card; any mismatch answers the same "no match", so the form
# tells nothing about who has a card. Tries count against the website's anonymous allowance.

def _find_form(request: Request, ctx: Ctx, values: dict[str, str], error: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    token, new = security.csrf_token(request, ctx.vault)
    lang = i18n.negotiate(request)
    response = render(request, "card_find.html", status_code, private=True, nav="card", values=values, error=error,
                      csrf_field=security.CSRF_FIELD, csrf_token=token, document_types=_document_types(lang))
    if new:
        security.set_csrf_cookie(response, request, token)
    return response


@router.get("/card/find", response_class=HTMLResponse)
def card_find_form(request: Request, ctx: WebsiteCtx) -> HTMLResponse:
    return _find_form(request, ctx, {"document_type": DocumentType.RESIDENT_ID.value})


@router.post("/card/find", response_class=HTMLResponse)
def card_find(
    request: Request,
    ctx: WebsiteCtx,
    document_type: Annotated[str, Form(max_length=2)] = "",
    document_number: Annotated[str, Form(max_length=64)] = "",
    ehc_id: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not security.csrf_valid(request, ctx.vault, csrf_token):
        return error_page(request, 403, "csrf_failed")
    values = {"document_type": document_type, "document_number": document_number, "ehc_id": ehc_id}
    t = i18n.translator(i18n.negotiate(request))
    typed = "".join(ehc_id.split()).upper()
    try:
        card = service.find_by_document(ctx, document_type, document_number)
    except Problem:
        card = None
    if card is None or card.ehc_id != typed:
        ctx.session.rollback()
        return _find_form(request, ctx, values, t("card_find.no_match"), 404)
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/card", status_code=303)
    security.set_card_cookie(response, request, ctx.vault, card.ehc_id)
    response.headers["Cache-Control"] = "no-store"
    return response
