"""Resident pages: sign in with a text-message code (or a password), "my card" with the family
members one looks after, reporting a card lost, and "who looked at my data".

The same services as the resident API (``/api/v1/me``): sign-in rules in ``accounts/residents.py``,
which cards a resident reaches in ``me/service.py`` (the resident's own and those bound to them as
guardian; any other is "not found"), card rules in ``cards/service.py``, the access log in
``audit/service.py``, shaped exactly as the API shapes it (``audit.schemas.access_log_entry``: operators masked).

The sign-in is the ``ehc_resident`` cookie (``accounts.auth.set_resident_cookie``: HttpOnly,
SameSite=Lax, Secure over HTTPS). Between asking for a code and typing it, the phone number waits in
a short-lived cookie sealed with the platform's SM4 key, so it is neither in a URL nor readable in
the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from ..payments import service as payments
from ..accounts import residents, sms
from ..accounts import service as accounts
from ..accounts.auth import RESIDENT_COOKIE, clear_resident_cookie, set_resident_cookie
from ..audit import service as audit
from ..audit.schemas import access_log_entry  # the API's own shaping: the same masking
from ..cards import service as cards
from ..cards.models import Card, CardStatus
from ..cards.schemas import FamilyMemberIn
from ..identity import LABELS, DocumentType, mask_phone, normalise_phone
from ..institutions import service as institutions
from ..kit.clock import unix_now
from ..kit.codes import CHANNEL_LABELS, Channel
from ..kit.context import Actor, Ctx
from ..kit.deps import DbSession, get_platform
from ..kit.errors import NotFound, Problem, Unauthorized
from ..kit.http import safe_local_path
from ..me import service as me
from ..kit.auth import require_resident
from ..me.schemas import MyCardOut, my_card_out
from ..qr import second_factor as factors
from . import forms, i18n, pages
from .forms import FormState, page, require_csrf, see_other
from .pages import CHINA, PageRoute, Redirect, WebsiteCtx, client_address

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PHONE_COOKIE = "ehc_sign_in_phone"
PHONE_CONTEXT = "web.sign-in-phone"
PHONE_MAX_AGE = 10 * 60  # the code lives 5 minutes; room to ask for a second one
FAMILY_FIELDS = ("relation", "name", "document_type", "document_number", "sex", "birth_date", "phone")
LOST_REASONS = {"lost": "card or phone lost", "stolen": "stolen", "other": "other"}  # stored in the card's history
LOG_PAGE = 30


def _safe_next(target: str | None) -> str:
    """Only a resident page of this site: never an open redirect."""
    return safe_local_path(target, within="/me", default="/me")


def _development(ctx: Ctx) -> bool:
    return ctx.settings.environment != "production"


# -- who is signed in -------------------------------------------------------------------------

def resident_actor(session, token: str | None) -> Actor | None:  # noqa: ANN001
    if not token:
        return None
    try:
        actor = accounts.actor_for_token(session, token, Channel.WEBSITE)
    except Unauthorized:
        return None
    return accounts.resident_actor(actor.id, Channel.WEBSITE) if actor.kind == "resident" else None


def signed_in_resident(request: Request, session: DbSession) -> Ctx:
    request.state.db_session = session
    token = request.cookies.get(RESIDENT_COOKIE)
    actor = resident_actor(session, token)
    if actor is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = "/sign-in" if target == "/me" else f"/sign-in?next={quote(target, safe='/')}"
        raise Redirect(location, clear_cookies=(RESIDENT_COOKIE,) if token else ())
    platform = get_platform(request)
    platform.check_rate(actor, client_address(request))  # the API's allowance per signed-in person
    return require_resident(platform.ctx(session, actor))  # the resident API's own rule


ResidentPage = Annotated[Ctx, Depends(signed_in_resident)]


def resident_page(request: Request, ctx: Ctx, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    t = i18n.for_request(request)
    return page(request, ctx, template, status_code, area="resident",
                account={"label": t("account.signed_in_resident"), "role": "", "sign_out": "/sign-out",
                         "admin": False}, **context)


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


def _signed_in(request: Request, ctx: Ctx, signed: residents.SignedIn, next_page: str) -> Response:
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
    if resident_actor(ctx.session, request.cookies.get(RESIDENT_COOKIE)) is not None:
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
        residents.request_code(ctx, normalised)
        ctx.session.commit()
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
        signed = residents.sign_in_with_code(ctx, phone, values["code"], values["document_last4"] or None)
        ctx.session.commit()
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
        signed = residents.sign_in_with_password(ctx, normalise_phone(phone), password,
                                                 values["document_last4"] or None)
        ctx.session.commit()
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
        residents.sign_out(ctx.session, token)
        ctx.session.commit()
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
                for m in sms.outbox(ctx.session, ctx.vault, limit=20)]
    return page(request, ctx, "dev_outbox.html", messages=messages, sender=ctx.settings.sms_sender)


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
                         family_limit=ctx.settings.family_limit, pin_set=factors.pin_status(ctx, card).set,
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
        sexes=pages.SEXES,
    )


@router.get("/me/family/add", response_class=HTMLResponse)
def family_form(request: Request, ctx: ResidentPage) -> HTMLResponse:
    return _family_form(request, ctx)


def _family_state(t: i18n.Translator, errors: list[dict], values: dict[str, str], problem: Problem | None = None,
                  limit: int = 0) -> FormState:
    state = FormState(values=values, form="add")
    for error in errors:
        name = pages.FIELD_ALIASES.get(error.get("field", ""), error.get("field", ""))
        text = pages._message(t, error, values)  # the apply form's wording, document formats included
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
        return _family_form(request, ctx, _family_state(t, pages._schema_errors(exc), values, None), 422)
    try:
        issued = me.bind_family_member(ctx, cards.Registration(
            name=body.name, document_type=body.document.type, document_number=body.document.number, sex=body.sex,
            birth_date=body.birth_date, phone=body.phone), body.relation)
        ctx.session.commit()
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
        ctx.session.commit()
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
    status = factors.pin_status(ctx, target.card)
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
        changed = factors.set_pin(ctx, target.card, pin, current_pin=current_pin or None)
        ctx.session.commit()
    except Problem as problem:
        ctx.session.rollback()  # a wrong current PIN was counted (and committed) before the refusal
        return _pin_page(request, ctx, _target(ctx, card), _pin_refusal(t, problem), problem.status)
    return see_other(request, "/me", "pin_changed" if changed else "pin_set")


# -- who looked at my data --------------------------------------------------------------------

def _who(t: i18n.Translator, entry: Any, names: dict[str, str]) -> str:
    if entry.institution_id:
        return names.get(entry.institution_id) or entry.institution_id
    key = f"access_log.actor_{entry.actor_kind}"
    return t(key) if t.has(key) else entry.actor_kind


def _role(t: i18n.Translator, role: str | None) -> str:
    if not role:
        return ""
    return ", ".join(t(f"roles.{r}") if t.has(f"roles.{r}") else r for r in role.split(","))


@router.get("/me/access-log", response_class=HTMLResponse)
def access_log(
    request: Request,
    ctx: ResidentPage,
    member: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    t = i18n.for_request(request)
    person_id, relation = ctx.actor.id, None
    if member:  # a family member the resident guards; any other card is "not found", as in the API
        card, binding = me.guarded_card(ctx, member)
        person_id, relation = card.person_id, binding.relation
    found = audit.access_log_for_person(ctx, person_id, before=before, limit=LOG_PAGE)
    entries = [access_log_entry(e) for e in found.events]
    names: dict[str, str] = {}
    for institution_id in {e.institution_id for e in entries if e.institution_id}:
        institution = institutions.find_institution(ctx.session, institution_id)
        if institution is not None:
            names[institution_id] = institution.name
    column = 1 if t.lang == "zh" else 0
    rows = []
    for e in entries:
        at: datetime = e.at.astimezone(CHINA)
        channel = next((labels for code, labels in CHANNEL_LABELS.items() if code.value == e.channel), None)
        rows.append({
            "ref": e.ref,
            "at_iso": at.isoformat(timespec="seconds"),
            "date": t.date(at.date()),
            "time": at.strftime("%H:%M"),
            "who": _who(t, e, names),
            "role": _role(t, e.actor_role),
            "operator": e.operator or "",
            "channel": channel[column] if channel else e.channel,
            "purpose": e.purpose_label_zh if t.lang == "zh" else e.purpose_label,
            "action": e.action,
            "action_label": t(f"access_log.action_{e.action}"),
        })
    older = None
    if found.next_before is not None:
        older = "/me/access-log?" + (f"member={quote(member)}&" if member else "") + f"before={found.next_before}"
    return resident_page(request, ctx, "me_access_log.html", nav="access_log", rows=rows, older=older,
                         member=member, relation=t(f"relations.{relation}") if relation else None,
                         first_page=before is None)

