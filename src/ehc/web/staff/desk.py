"""The window clerk's card desk: find a card by the document the resident hands over, by a scanned
code or by its EHC ID; see it masked with its status and history; apply on the resident's behalf;
decide an application pending review after seeing the document; report lost, recover, reissue, modify,
cancel with a reason; print the static code; add a family member or a newborn; clear a PIN.

A fifth door into the card and QR services, no rule of its own: each form applies the rule of the API
endpoint that does the same thing (``cards.auth.CardStaff`` to open the desk and register a newborn,
``CardClerk`` for window work, ``CardReviewer`` for a review, ``qr.auth.QRPrinter`` to clear a PIN) and
calls the same service function. The desk acts on the service-window channel (0100) at the clerk's
institution, so the card's history and the resident's access log say "service window". Every read of a
holder's details goes through ``cards.service.holder`` (audited as ``card.desk``), the family through
``cards.service.family_of`` (audited), a scan through ``qr.service.verify`` (a card use, audited).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from ...cards import service as cards
from ...cards.auth import CardClerk, CardReviewer
from ...cards.schemas import NewbornIn, RegistrationIn, card_out
from ...cards.service import CardStatus
from ...identity.service import LABELS, DocumentType
from ...kit.codes import CHANNEL_LABELS, Channel
from ...kit.errors import Invalid, Problem, field_error
from ...qr import service as qr
from .. import i18n
from ..core import CHINA, PageRoute
from ..forms import FormState, missing, require_csrf, see_other
from ..public import schema_errors
from .common import Staff, StaffPage, _rule, desk_rule, form_failed, passes, print_rule, staff_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)

clerk_rule, reviewer_rule = _rule(CardClerk), _rule(CardReviewer)
STATUS_ACTIONS = ("report_lost", "recover", "reissue", "cancel")  # window work, each with a reason
DESK_PURPOSE = "card.desk"
SCAN_SCENE = "000000"  # a scan at the card desk is a card use of the "other" care step
# The application form's fields, in the order the form shows them.
APPLY_FIELDS = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address")
FAMILY_FIELDS = (*APPLY_FIELDS, "relation")
NEWBORN_FIELDS = ("sex", "birth_date", "name", "birth_certificate", "birth_order", "multiple_birth")
FIELD_ALIASES = {"document.type": "document_type", "document.number": "document_number", "region_code": "document_number",
                 "document": "document_number"}


def desk_staff(staff: StaffPage) -> Staff:
    """A staff member the API's ``CardStaff`` rule lets in, acting at the service window."""
    desk_rule(staff.ctx)  # 403 role_not_allowed, as the API answers
    staff.ctx = replace(staff.ctx, actor=replace(staff.ctx.actor, channel=Channel.WINDOW))
    return staff


DeskPage = Annotated[Staff, Depends(desk_staff)]


def _document_types(t: i18n.Translator) -> list[tuple[str, str]]:
    column = 1 if t.lang == "zh" else 0
    return [(kind.value, LABELS[kind][column]) for kind in DocumentType]


def _desk(request: Request, staff: Staff, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    t = i18n.for_request(request)
    context.setdefault("state", FormState())
    return staff_page(request, staff, template, status_code, nav="staff_desk", document_types=_document_types(t),
                      **context)


# -- finding a card ---------------------------------------------------------------------------------

@router.get("/staff/desk", response_class=HTMLResponse)
def desk_home(request: Request, staff: DeskPage) -> HTMLResponse:
    return _desk(request, staff, "staff_desk.html", may_apply=True)


@router.post("/staff/desk/find", response_class=HTMLResponse)
def desk_find(
    request: Request,
    staff: DeskPage,
    by: Annotated[str, Form(max_length=16)] = "document",
    document_type: Annotated[str, Form(max_length=2)] = "01",
    document_number: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=2048)] = "",
    ehc_id: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """POST: a document number must not end up in a URL, a proxy's log or the browser's history."""
    require_csrf(request, staff.ctx, csrf_token)
    values = {"by": by, "document_type": document_type, "document_number": document_number, "code": code,
              "ehc_id": ehc_id}
    field = {"document": "document_number", "code": "code", "ehc_id": "ehc_id"}.get(by, "document_number")
    t = i18n.for_request(request)
    if not values[field].strip():
        state = missing(t, values, (field,), form="find")
        return _desk(request, staff, "staff_desk.html", 422, state=state, may_apply=True)
    try:
        if by == "code":
            card = qr.verify(staff.ctx, code, qr.Use(scene=SCAN_SCENE, channel=Channel.WINDOW.value)).card
        elif by == "ehc_id":
            card = cards.get_card(staff.ctx, "".join(ehc_id.split()))
        else:
            card = cards.find_by_document(staff.ctx, document_type, document_number)
    except Problem as problem:
        state = form_failed(staff.ctx.session, request, problem, values, "find", fields=("document_number", "code", "ehc_id"),
                            aliases={"document.number": "document_number", "number": "document_number",
                                     "document.type": "document_number", "type": "document_number"})
        if not state.field_errors:
            state.field_errors[field] = [text for _, text in state.summary]
        return _desk(request, staff, "staff_desk.html", problem.status, state=state, may_apply=True)
    return see_other(request, f"/staff/desk/cards/{card.ehc_id}")


# -- the card -------------------------------------------------------------------------------------

def _event_row(t: i18n.Translator, event) -> dict[str, Any]:  # noqa: ANN001
    action = f"desk.action.{event.action}"
    return {
        "at": event.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M"),
        "action": t(action) if t.has(action) else event.action,
        "from": t(f"status.{event.from_status}") if event.from_status else "",
        "to": t(f"status.{event.to_status}"),
        "channel": _channel(t, event.channel),
        "who": event.operator or event.actor_id or t(f"desk.actor.{event.actor_kind}"),
        "reason": event.reason or "",
    }


def _channel(t: i18n.Translator, code: str | None) -> str:
    labels = next((labels for channel, labels in CHANNEL_LABELS.items() if channel.value == code), None)
    return labels[1 if t.lang == "zh" else 0] if labels else (code or "")


def _card_view(t: i18n.Translator, out) -> dict[str, Any]:  # noqa: ANN001
    holder = out.holder
    kind = DocumentType(holder.document_type) if holder.document_type else None
    verifier = f"verifier.{out.verifier or 'none'}"
    return {
        "ehc_id": out.ehc_id,
        "ehc_id_groups": [out.ehc_id[i:i + 8] for i in range(0, len(out.ehc_id), 8)],
        "status": out.status,
        "status_label": t(f"status.{out.status}"),
        "name": holder.name or t("card.unnamed"),
        "document_label": LABELS[kind][1 if t.lang == "zh" else 0] if kind else "",
        "document_type": holder.document_type or "",
        "document_number": holder.document_number or "",
        "sex": t(f"sex.{holder.sex}") if t.has(f"sex.{holder.sex}") else holder.sex,
        "birth_year": holder.birth_year or "",
        "phone": holder.phone or "",
        "issued": t.date(out.issued_at.astimezone(CHINA).date()),
        "channel": _channel(t, out.channel),
        "verifier": t(verifier) if t.has(verifier) else (out.verifier or ""),
        "temporary": out.temporary,
        "sequence": out.sequence,
    }


def _card_page(request: Request, staff: Staff, ehc_id: str, state: FormState | None = None,
               status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    card = cards.get_card(ctx, ehc_id)
    person, details, identifiers = cards.holder(ctx, card, purpose=DESK_PURPOSE)  # audited: the resident sees it
    view = _card_view(t, card_out(card, person, details, identifiers))
    events = [_event_row(t, e) for e in reversed(cards.history(ctx, card))]
    family = []
    for binding, member in cards.family_of(ctx, card.ehc_id):  # audited as card.family
        if member is None:
            continue
        m_person, m_details, m_ids = cards.holder(ctx, member, purpose="card.family")
        family.append({"relation": t(f"relations.{binding.relation}"),
                       **_card_view(t, card_out(member, m_person, m_details, m_ids))})
    status = CardStatus(card.status)
    can = {
        "review": status == CardStatus.PENDING_REVIEW and passes(reviewer_rule, staff),
        "clerk": passes(clerk_rule, staff),
        "print": status == CardStatus.NORMAL and passes(print_rule, staff),
        "family": status == CardStatus.NORMAL,
        "modify": status != CardStatus.CANCELLED and passes(clerk_rule, staff),
        "pin": status == CardStatus.NORMAL and passes(print_rule, staff),
    }
    actions = [a for a in STATUS_ACTIONS if status in cards.TRANSITIONS[a][0]] if can["clerk"] else []
    return _desk(request, staff, "staff_desk_card.html", status_code, card=view, events=events, family=family,
                 can=can, actions=actions, relations=[(r, t(f"relations.{r}")) for r in cards.RELATIONS],
                 state=state or FormState(), today=date.today().isoformat())


@router.get("/staff/desk/cards/{ehc_id}", response_class=HTMLResponse)
def desk_card(request: Request, staff: DeskPage, ehc_id: str) -> HTMLResponse:
    return _card_page(request, staff, ehc_id)


def _failed(request: Request, staff: Staff, ehc_id: str, problem: Problem, values: dict[str, str], form: str,
            fields: tuple[str, ...] = ()) -> HTMLResponse:
    state = form_failed(staff.ctx.session, request, problem, values, form, fields=fields, aliases=FIELD_ALIASES)
    return _card_page(request, staff, ehc_id, state, problem.status)


@router.post("/staff/desk/cards/{ehc_id}/status/{action}", response_class=HTMLResponse)
def desk_status(request: Request, staff: DeskPage, ehc_id: str, action: str,
                reason: Annotated[str, Form(max_length=500)] = "",
                csrf_token: Annotated[str, Form()] = "") -> Response:
    """Report lost, recover, reissue or cancel, with a reason (``POST /api/v1/cards/{id}/<action>``)."""
    clerk_rule(staff.ctx)
    require_csrf(request, staff.ctx, csrf_token)
    action = action.replace("-", "_")
    if action not in STATUS_ACTIONS:
        raise Invalid("Unknown card action.", code="card_action_unknown")
    try:
        card = cards.transition(staff.ctx, ehc_id, action, reason)
    except Problem as problem:
        return _failed(request, staff, ehc_id, problem, {"reason": reason}, action, ("reason",))
    return see_other(request, f"/staff/desk/cards/{card.ehc_id}", f"desk_{action}")


@router.post("/staff/desk/cards/{ehc_id}/review/{decision}", response_class=HTMLResponse)
def desk_review(request: Request, staff: DeskPage, ehc_id: str, decision: str,
                document_type: Annotated[str, Form(max_length=2)] = "",
                document_number: Annotated[str, Form(max_length=64)] = "",
                reason: Annotated[str, Form(max_length=500)] = "",
                csrf_token: Annotated[str, Form()] = "") -> Response:
    """Approve after seeing the document, or reject saying why (``POST /api/v1/cards/{id}/approve``)."""
    reviewer_rule(staff.ctx)
    require_csrf(request, staff.ctx, csrf_token)
    values = {"document_type": document_type, "document_number": document_number, "reason": reason}
    try:
        card = cards.review(staff.ctx, ehc_id, decision, document_type=document_type or None,
                            document_number=document_number.strip() or None, reason=reason)
    except Problem as problem:
        return _failed(request, staff, ehc_id, problem, values, decision, ("document_number", "reason"))
    return see_other(request, f"/staff/desk/cards/{card.ehc_id}", f"desk_{decision}")


@router.post("/staff/desk/cards/{ehc_id}/modify", response_class=HTMLResponse)
def desk_modify(request: Request, staff: DeskPage, ehc_id: str,
                name: Annotated[str, Form(max_length=64)] = "",
                phone: Annotated[str, Form(max_length=32)] = "",
                address: Annotated[str, Form(max_length=200)] = "",
                reason: Annotated[str, Form(max_length=500)] = "",
                csrf_token: Annotated[str, Form()] = "") -> Response:
    """Correct the holder's details; a new name is re-verified (``PATCH /api/v1/cards/{id}``). A phone
    added here is how a resident who applied without one gets back to their card by SMS."""
    clerk_rule(staff.ctx)
    require_csrf(request, staff.ctx, csrf_token)
    values = {"name": name, "phone": phone, "address": address, "reason": reason}
    changes = cards.Changes(name=name.strip() or None, phone=phone.strip() or None, address=address.strip() or None)
    try:
        if changes == cards.Changes():
            raise Invalid("Change at least one detail.", code="nothing_to_change",
                          errors=[field_error("name", "nothing_to_change", "Change at least one detail.")])
        card = cards.modify(staff.ctx, ehc_id, changes, reason)
    except Problem as problem:
        return _failed(request, staff, ehc_id, problem, values, "modify", ("name", "phone", "address", "reason"))
    return see_other(request, f"/staff/desk/cards/{card.ehc_id}", "desk_modified")


@router.post("/staff/desk/cards/{ehc_id}/pin/clear", response_class=HTMLResponse)
def desk_clear_pin(request: Request, staff: DeskPage, ehc_id: str,
                   reason: Annotated[str, Form(max_length=500)] = "",
                   csrf_token: Annotated[str, Form()] = "") -> Response:
    """Remove a forgotten PIN once the holder proved who they are (``POST /api/v1/cards/{id}/pin/clear``)."""
    print_rule(staff.ctx)
    require_csrf(request, staff.ctx, csrf_token)
    try:
        cleared = qr.clear_pin(staff.ctx, cards.get_card(staff.ctx, ehc_id), reason)
    except Problem as problem:
        return _failed(request, staff, ehc_id, problem, {"reason": reason}, "pin", ("reason",))
    return see_other(request, f"/staff/desk/cards/{ehc_id.upper()}", "desk_pin_cleared" if cleared else "desk_no_pin")


def _application(values: dict[str, str]) -> cards.Registration:
    """The form's application, through the API's own wire model (the same checks and field codes)."""
    try:
        return cards.registration_of(RegistrationIn(
            name=values["name"], document={"type": values["document_type"], "number": values["document_number"]},
            sex=values.get("sex") or None, birth_date=values.get("birth_date") or None,
            phone=values.get("phone") or None, address=values.get("address") or None))
    except ValidationError as exc:
        raise _schema_problem(exc) from None


def _schema_problem(exc: ValidationError) -> Problem:
    return Invalid("The form has invalid fields.", code="application_invalid", errors=schema_errors(exc))


@router.post("/staff/desk/cards/{ehc_id}/family", response_class=HTMLResponse)
def desk_family(request: Request, staff: DeskPage, ehc_id: str,
                name: Annotated[str, Form(max_length=64)] = "",
                document_type: Annotated[str, Form(max_length=2)] = "01",
                document_number: Annotated[str, Form(max_length=64)] = "",
                sex: Annotated[str, Form(max_length=1)] = "",
                birth_date: Annotated[str, Form(max_length=10)] = "",
                phone: Annotated[str, Form(max_length=32)] = "",
                relation: Annotated[str, Form(max_length=16)] = "child",
                csrf_token: Annotated[str, Form()] = "") -> Response:
    """Register (or find) a family member and bind them to this card (``POST /api/v1/cards/{id}/family``)."""
    clerk_rule(staff.ctx)
    require_csrf(request, staff.ctx, csrf_token)
    values = {"name": name, "document_type": document_type, "document_number": document_number, "sex": sex,
              "birth_date": birth_date, "phone": phone, "relation": relation}
    try:
        cards.bind_family_member(staff.ctx, ehc_id, _application(values), relation)
    except Problem as problem:
        return _failed(request, staff, ehc_id, problem, values, "family", FAMILY_FIELDS)
    return see_other(request, f"/staff/desk/cards/{ehc_id.upper()}", "desk_family_added")


@router.post("/staff/desk/cards/{ehc_id}/newborn", response_class=HTMLResponse)
def desk_newborn(request: Request, staff: DeskPage, ehc_id: str,
                 sex: Annotated[str, Form(max_length=1)] = "",
                 birth_date: Annotated[str, Form(max_length=10)] = "",
                 name: Annotated[str, Form(max_length=64)] = "",
                 birth_certificate: Annotated[str, Form(max_length=16)] = "",
                 birth_order: Annotated[str, Form(max_length=1)] = "1",
                 csrf_token: Annotated[str, Form()] = "") -> Response:
    """A newborn's card, bound to this parent's (``POST /api/v1/cards/{id}/newborns``)."""
    require_csrf(request, staff.ctx, csrf_token)
    values = {"sex": sex, "birth_date": birth_date, "name": name, "birth_certificate": birth_certificate,
              "birth_order": birth_order}
    try:
        try:
            body = NewbornIn(sex=sex, birth_date=birth_date, name=name.strip() or None,
                             birth_certificate=birth_certificate.strip() or None, birth_order=birth_order or "1",
                             multiple_birth=(birth_order or "1") != "1")
        except ValidationError as exc:
            raise _schema_problem(exc) from None
        issued = cards.register_newborn(staff.ctx, ehc_id, cards.Newborn(**body.model_dump()))
    except Problem as problem:
        return _failed(request, staff, ehc_id, problem, values, "newborn", NEWBORN_FIELDS)
    return see_other(request, f"/staff/desk/cards/{issued.card.ehc_id}", "desk_newborn_added")


# -- applying on the resident's behalf ------------------------------------------------------------

@router.get("/staff/desk/apply", response_class=HTMLResponse)
def desk_apply_form(request: Request, staff: DeskPage) -> HTMLResponse:
    return _desk(request, staff, "staff_desk_apply.html", state=FormState(values={"document_type": "01"}))


@router.post("/staff/desk/apply", response_class=HTMLResponse)
def desk_apply(request: Request, staff: DeskPage,
               name: Annotated[str, Form(max_length=64)] = "",
               document_type: Annotated[str, Form(max_length=2)] = "01",
               document_number: Annotated[str, Form(max_length=64)] = "",
               sex: Annotated[str, Form(max_length=1)] = "",
               birth_date: Annotated[str, Form(max_length=10)] = "",
               phone: Annotated[str, Form(max_length=32)] = "",
               address: Annotated[str, Form(max_length=200)] = "",
               csrf_token: Annotated[str, Form()] = "") -> Response:
    """The resident's application, typed by the clerk from the document (``POST /api/v1/cards``): a
    passport or a document the verifier cannot check goes to review, which the clerk then decides."""
    require_csrf(request, staff.ctx, csrf_token)
    values = {"name": name, "document_type": document_type, "document_number": document_number, "sex": sex,
              "birth_date": birth_date, "phone": phone, "address": address}
    try:
        issued = cards.register(staff.ctx, _application(values))
    except Problem as problem:
        state = form_failed(staff.ctx.session, request, problem, values, "apply", fields=APPLY_FIELDS,
                            aliases=FIELD_ALIASES)
        return _desk(request, staff, "staff_desk_apply.html", problem.status, state=state)
    return see_other(request, f"/staff/desk/cards/{issued.card.ehc_id}",
                     "desk_issued" if issued.created else "desk_existing")
