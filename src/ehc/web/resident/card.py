"""My card and my code, the family members I look after, reporting a card lost, the PIN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from ...payments import service as payments
from ...accounts.auth import RESIDENT_COOKIE
from ...cards import service as cards
from ...cards.schemas import FamilyMemberIn
from ...cards.service import Card, CardStatus
from ...identity.service import LABELS, DocumentType, mask_phone
from ...kit.context import Ctx
from ...kit.errors import NotFound, Problem
from ...me import service as me
from ...me.schemas import MyCardOut, my_card_out
from ...qr import service as qr
from .. import forms, i18n, public
from ..core import CHINA, PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import LOST_REASONS, FAMILY_FIELDS, ResidentPage, resident_page


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- my card ----------------------------------------------------------------------------------

def _card_view(t: i18n.Translator, out: MyCardOut, relation: str | None = None) -> dict[str, Any]:
    holder = out.holder
    column = 1 if t.lang == "zh" else 0
    kind = DocumentType(holder.document_type) if holder.document_type else None
    return {
        "ehc_id": out.ehc_id,
        "ehc_id_groups": [out.ehc_id[i:i + 8] for i in range(0, len(out.ehc_id), 8)],
        "status": out.status,
        "status_label": t(f"status.{out.status}"),
        "name": holder.name or t("card.unnamed"),
        "document_label": LABELS[kind][column] if kind else "",
        "document_number": holder.document_number or "",
        "sex": t(f"sex.{holder.sex}") if t.has(f"sex.{holder.sex}") else holder.sex,
        "birth_date": t.date(holder.birth_date) if holder.birth_date else "",
        "issued": t.date(out.issued_at.astimezone(CHINA).date()),
        "issued_iso": out.issued_at.astimezone(CHINA).date().isoformat(),
        "phone": mask_phone(holder.phone) if holder.phone else "",
        "relation": t(f"relations.{relation}") if relation else "",
        "may_report_lost": out.status == CardStatus.NORMAL.value,
        "temporary": out.temporary,
    }


def _view(ctx: Ctx, t: i18n.Translator, card: Card, *, own: bool, relation: str | None = None) -> dict[str, Any]:
    # As the API's GET /api/v1/me/card and /family: the same purposes in the audit trail.
    person, details, identifiers = cards.holder(ctx, card, purpose="card.view" if own else "card.family")
    return _card_view(t, my_card_out(card, person, details, identifiers, own=own), relation)


@router.get("/me", response_class=HTMLResponse)
def my_card(request: Request, ctx: ResidentPage) -> HTMLResponse:
    t = i18n.for_request(request)
    try:
        card = me.my_card(ctx)
    except NotFound:
        return resident_page(request, ctx, "me.html", nav="me", card=None, family=[])
    own = _view(ctx, t, card, own=True)
    family = [(_view(ctx, t, member, own=False, relation=binding.relation) if member is not None
               else {"relation": t(f"relations.{binding.relation}"), "ehc_id": None, "name": "", "status": "none"})
              for binding, member in me.family(ctx)]
    return resident_page(request, ctx, "me.html", nav="me", card=own, family=family,
                         family_limit=ctx.settings.family_limit, pin_set=qr.pin_status(ctx, card).set,
                         pin_state=FormState())


# -- my QR code -------------------------------------------------------------------------------

CODE_IMAGE = "/api/v1/me/qr/dynamic.png"  # the resident API; the page's script redraws from it


@router.get("/me/code", response_class=HTMLResponse)
def my_code(request: Request, ctx: ResidentPage, member: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    """The dynamic QR code of my card, or of a family member's I guard. ``static/qr.js`` draws a fresh
    code from the resident API (the page's own sign-in cookie) every ``refresh_after`` seconds and
    when the tab comes back into view; without script the image is drawn once."""
    t = i18n.for_request(request)
    target = _target(ctx, member)
    view = _view(ctx, t, target.card, own=target.own, relation=target.relation)
    query = {} if target.own else {"member": target.card.ehc_id}
    code = {
        "endpoint": CODE_IMAGE,
        "member": query.get("member", ""),
        "refresh": ctx.settings.qr_refresh_seconds,
        "active": target.card.status == CardStatus.NORMAL.value,
        "payment": "sandbox" if "sandbox" in payments.available(ctx) else "",
        "fallback": CODE_IMAGE + (f"?{urlencode(query)}" if query else ""),
        "sign_in": "/sign-in?next=" + quote("/me/code" + (f"?{urlencode(query)}" if query else ""), safe="/"),
    }
    return resident_page(request, ctx, "me_code.html", nav="code", card=view, own=target.own, code=code)


# -- adding a family member -------------------------------------------------------------------

def _family_form(request: Request, ctx: Ctx, state: FormState | None = None, status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    column = 1 if t.lang == "zh" else 0
    return resident_page(
        request, ctx, "me_family_add.html", status_code, nav="me",
        state=state or FormState(values={"relation": "child", "document_type": DocumentType.RESIDENT_ID.value}),
        relations=[(r, t(f"relations.{r}")) for r in cards.RELATIONS],
        document_types=[(kind.value, LABELS[kind][column]) for kind in DocumentType],
        sexes=public.SEXES,
    )


@router.get("/me/family/add", response_class=HTMLResponse)
def family_form(request: Request, ctx: ResidentPage) -> HTMLResponse:
    return _family_form(request, ctx)


def _family_state(t: i18n.Translator, errors: list[dict], values: dict[str, str], problem: Problem | None = None,
                  limit: int = 0) -> FormState:
    state = FormState(values=values, form="add")
    for error in errors:
        name = public.FIELD_ALIASES.get(error.get("field", ""), error.get("field", ""))
        text = public.field_message(t, error, values)  # the apply form's wording, document formats included
        state.add(name if name in FAMILY_FIELDS else "", text)
    if problem is not None and not errors:
        params = {**forms.problem_params(problem), "limit": limit}
        state.add("", forms.message(t, problem.code, params, problem.detail))
    return state


@router.post("/me/family/add", response_class=HTMLResponse)
def add_family_member(
    request: Request,
    ctx: ResidentPage,
    relation: Annotated[str, Form(max_length=16)] = "",
    name: Annotated[str, Form()] = "",
    document_type: Annotated[str, Form()] = "",
    document_number: Annotated[str, Form()] = "",
    sex: Annotated[str, Form()] = "",
    birth_date: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    values = {"relation": relation, "name": name, "document_type": document_type, "document_number": document_number,
              "sex": sex, "birth_date": birth_date, "phone": phone}
    try:
        body = FamilyMemberIn(name=name, document={"type": document_type, "number": document_number},
                              sex=sex or None, birth_date=birth_date or None, phone=phone or None, relation=relation)
    except ValidationError as exc:
        return _family_form(request, ctx, _family_state(t, public.schema_errors(exc), values, None), 422)
    try:
        issued = me.bind_family_member(ctx, cards.registration_of(body), body.relation)
    except Problem as problem:
        ctx.session.rollback()
        state = _family_state(t, problem.errors, values, problem, ctx.settings.family_limit)
        return _family_form(request, ctx, state, problem.status)
    return see_other(request, "/me", "member_added" if issued.created else "member_bound")


# -- reporting a card lost --------------------------------------------------------------------

@dataclass
class _Target:
    card: Card
    own: bool
    relation: str | None


def _target(ctx: Ctx, ehc_id: str) -> _Target:
    """The resident's own card, or a family member's they guard; any other card is "not found"."""
    own = me.my_card(ctx)
    if not ehc_id or ehc_id.strip().upper() == own.ehc_id:
        return _Target(own, True, None)
    card, binding = me.guarded_card(ctx, ehc_id)
    return _Target(card, False, binding.relation)


def _lost_page(request: Request, ctx: Ctx, target: _Target, state: FormState | None = None,
               status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    view = _view(ctx, t, target.card, own=target.own, relation=target.relation)
    return resident_page(request, ctx, "me_report_lost.html", status_code, nav="me", card=view, own=target.own,
                         reasons=[(k, t(f"report_lost.reason_{k}")) for k in LOST_REASONS],
                         state=state or FormState(values={"reason": "lost"}))


@router.get("/me/report-lost", response_class=HTMLResponse)
def report_lost_form(request: Request, ctx: ResidentPage,
                     card: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    return _lost_page(request, ctx, _target(ctx, card))


@router.post("/me/report-lost", response_class=HTMLResponse)
def report_lost(
    request: Request,
    ctx: ResidentPage,
    card: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=16)] = "",
    details: Annotated[str, Form(max_length=300)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    target = _target(ctx, card)
    values = {"reason": reason, "details": details}
    if reason not in LOST_REASONS:
        state = FormState(values=values, form="")
        state.add("reason-lost", t("errors.lost_reason_required"))
        return _lost_page(request, ctx, target, state, 422)
    text = LOST_REASONS[reason] + (f": {' '.join(details.split())}" if details.strip() else "")
    try:
        keep = request.cookies.get(RESIDENT_COOKIE)  # this browser stays signed in; other sign-ins end
        if target.own:
            me.report_my_card_lost(ctx, text, keep_session=keep)
        else:
            me.report_member_card_lost(ctx, target.card.ehc_id, text, keep_session=keep)
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(values=values)
        state.add("", forms.message(t, problem.code, forms.problem_params(problem), problem.detail))
        return _lost_page(request, ctx, _target(ctx, card), state, problem.status)
    return see_other(request, "/me", "card_reported_lost" if target.own else "member_card_reported_lost")


# -- the PIN for the printed code ------------------------------------------------------------

def _pin_page(request: Request, ctx: Ctx, target: _Target, state: FormState | None = None,
              status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    view = _view(ctx, t, target.card, own=target.own, relation=target.relation)
    status = qr.pin_status(ctx, target.card)
    locked = status.locked_until.astimezone(CHINA).strftime("%H:%M") if status.locked_until else ""
    return resident_page(request, ctx, "me_pin.html", status_code, nav="me", card=view, own=target.own,
                         pin_card=target.card.ehc_id, pin_set=status.set, pin_locked=locked,
                         pin_state=state or FormState())


def _pin_refusal(t: i18n.Translator, problem: Problem) -> FormState:
    """A refusal of the PIN service in words, against the field it is about (PINs are not kept)."""
    state = FormState(form="pin")
    params = {**forms.problem_params(problem), "attempts_left": problem.extra.get("attempts_left", 0)}
    if "retry_after" in problem.extra:
        params["wait"] = t.duration(int(problem.extra["retry_after"]))
    fields = [e.get("field", "") for e in problem.errors] or [""]
    key = f"pin.error_{problem.code}"
    text = t(key, **params) if t.has(key) else problem.detail
    for name in fields:
        state.add(name if name in ("pin", "current_pin") else "", text)
    return state


@router.get("/me/pin", response_class=HTMLResponse)
def pin_form(request: Request, ctx: ResidentPage, card: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    return _pin_page(request, ctx, _target(ctx, card))


@router.post("/me/pin", response_class=HTMLResponse)
def set_pin(
    request: Request,
    ctx: ResidentPage,
    card: Annotated[str, Form(max_length=64)] = "",
    pin: Annotated[str, Form(max_length=16)] = "",
    pin_confirm: Annotated[str, Form(max_length=16)] = "",
    current_pin: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Set or change the PIN of the resident's card or a guarded family member's (qr/second_factor.py)."""
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    target = _target(ctx, card)
    if pin != pin_confirm:
        state = FormState(form="pin")
        state.add("pin_confirm", t("pin.error_mismatch"))
        return _pin_page(request, ctx, target, state, 422)
    try:
        changed = qr.set_pin(ctx, target.card, pin, current_pin=current_pin or None)
    except Problem as problem:
        ctx.session.rollback()  # a wrong current PIN was counted (and committed) before the refusal
        return _pin_page(request, ctx, _target(ctx, card), _pin_refusal(t, problem), problem.status)
    return see_other(request, "/me", "pin_changed" if changed else "pin_set")
