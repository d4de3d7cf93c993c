"""The resident's payment pages: my bills and my family members' (the split, paying in the app, a
payment code to show at the cashier, the receipt) and my payment links (medical insurance and a bank
card, mine and those of the family members I guard).

The same service calls as the resident API (``/api/v1/me/bills``, ``/api/v1/me/payments``); the
bill's payment code is drawn by ``payments.draw_bill_code`` and shown as the same QR image
``/me/code`` shows (``qr.render_png``, as a data: URL, which the pages' CSP allows).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ...kit.context import Ctx
from ...kit.errors import Invalid, Problem
from ...me import service as me
from ...payments import service as payments
from ...qr import service as qr
from .. import i18n
from .. import payments as shown
from ..core import PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import ResidentPage, resident_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)
BILLS = "/me/bills"
LINKS = "/me/payments"
KINDS = ("insurance", "bank")
# How long paying in the app waits for the insurer and the bank before the page answers (as the API).
SETTLE_WAIT = 8.0


def _people(ctx: Ctx, t: i18n.Translator) -> list[dict[str, Any]]:
    """Me, then each family member with a card I guard: whose bills I see and whose links I manage."""
    own = me.my_card(ctx)
    people = [{"member": "", "person_id": own.person_id, "label": t("payments.for_me")}]
    people += [{"member": card.ehc_id, "person_id": card.person_id, "label": t(f"relations.{binding.relation}")}
               for binding, card in me.family(ctx) if card is not None]
    return people


# -- my bills ---------------------------------------------------------------------------------------

@router.get(BILLS, response_class=HTMLResponse)
def my_bills(request: Request, ctx: ResidentPage) -> HTMLResponse:
    t = i18n.for_request(request)
    whose = {p["person_id"]: p["label"] for p in _people(ctx, t)}
    rows = []
    for bill in shown.open_first(payments.my_bills(ctx)):
        row = shown.bill_row(ctx, t, bill, base=BILLS)
        row["whose"] = whose.get(bill.person_id, "")
        rows.append(row)
    return resident_page(request, ctx, "me_bills.html", nav="bills", rows=rows)


def _bill_page(request: Request, ctx: Ctx, bill_id: str, state: FormState | None = None, status_code: int = 200,
               code: dict[str, Any] | None = None) -> HTMLResponse:
    t = i18n.for_request(request)
    bill = payments.my_bill(ctx, bill_id)
    whose = {p["person_id"]: p["label"] for p in _people(ctx, t)}
    view = shown.bill_view(ctx, t, bill)
    view["whose"] = whose.get(bill.person_id, "")
    linked = {link.kind for link in payments.links(ctx, _member_of(ctx, bill))}
    return resident_page(request, ctx, "me_bill.html", status_code, nav="bills", bill=view, code=code,
                         linked=sorted(linked), state=state or FormState())


def _member_of(ctx: Ctx, bill: payments.Bill) -> str | None:
    """The family member whose card the bill is for, or None for my own."""
    return None if bill.person_id == me.my_card(ctx).person_id else bill.ehc_id


@router.get(f"{BILLS}/{{bill_id}}", response_class=HTMLResponse)
def my_bill(request: Request, ctx: ResidentPage, bill_id: str) -> HTMLResponse:
    return _bill_page(request, ctx, bill_id)


@router.post(f"{BILLS}/{{bill_id}}/pay", response_class=HTMLResponse)
def pay(request: Request, ctx: ResidentPage, bill_id: str, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Pay in the app: insurance first, the linked bank card the rest."""
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    try:
        row = payments.settle_in_app(ctx, bill_id)
    except Problem as problem:
        return _bill_page(request, ctx, bill_id, shown.failed(ctx, t, problem, "pay"), problem.status)
    row = payments.settle_and_wait(ctx, row, SETTLE_WAIT)
    flash = {"paid": "bill_paid_in_app", "failed": "payment_failed"}.get(row.status, "payment_pending")
    return see_other(request, f"{BILLS}/{bill_id}", flash, row.receipt_no or "")


@router.post(f"{BILLS}/{{bill_id}}/code", response_class=HTMLResponse)
def show_code(request: Request, ctx: ResidentPage, bill_id: str,
              csrf_token: Annotated[str, Form()] = "") -> HTMLResponse:
    """A two-in-one code that pays this bill, this amount, once: the cashier scans it from the screen."""
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    try:
        drawn = payments.draw_bill_code(ctx, bill_id)
    except Problem as problem:
        return _bill_page(request, ctx, bill_id, shown.failed(ctx, t, problem, "code"), problem.status)
    image = qr.render_png(drawn.text)
    code = {"image": f"data:{image.media_type};base64,{base64.b64encode(image.data).decode()}",
            "text": drawn.text, "expires": shown.when(drawn.expires_at), "amount_fen": drawn.amount_fen}
    return _bill_page(request, ctx, bill_id, code=code)


# -- my payment links -------------------------------------------------------------------------------

def _links_page(request: Request, ctx: Ctx, state: FormState | None = None, status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    people = _people(ctx, t)
    for person in people:
        person["links"] = [{"kind": link.kind, "kind_label": t(f"payments.link_kind.{link.kind}"),
                            "masked": link.masked, "scheme": t(f"payments.scheme.{link.scheme}")
                            if link.scheme and t.has(f"payments.scheme.{link.scheme}") else (link.scheme or ""),
                            "since": shown.when(link.created_at)}
                           for link in payments.links(ctx, person["member"] or None)]
        person["has"] = {link["kind"] for link in person["links"]}
    return resident_page(request, ctx, "me_payments.html", status_code, nav="bills", people=people,
                         members=[(p["member"], p["label"]) for p in people], state=state or FormState())


@router.get(LINKS, response_class=HTMLResponse)
def my_links(request: Request, ctx: ResidentPage) -> HTMLResponse:
    return _links_page(request, ctx)


@router.post(f"{LINKS}/insurance", response_class=HTMLResponse)
def link_insurance(request: Request, ctx: ResidentPage, member: Annotated[str, Form(max_length=64)] = "",
                   csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    try:
        link = payments.link_insurance(ctx, member or None)
    except Problem as problem:
        return _links_page(request, ctx, shown.failed(ctx, t, problem, "insurance", {"member": member}),
                           problem.status)
    return see_other(request, LINKS, "insurance_linked", link.masked)


@router.post(f"{LINKS}/bank", response_class=HTMLResponse)
def link_bank(request: Request, ctx: ResidentPage, member: Annotated[str, Form(max_length=64)] = "",
              account_no: Annotated[str, Form(max_length=40)] = "",
              csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    number = "".join(account_no.split())
    values = {"member": member, "account_no": account_no}
    if not number:
        state = FormState(values=values, form="bank")
        state.add("account_no", t("errors.required"))
        return _links_page(request, ctx, state, 422)
    try:
        link = payments.link_bank(ctx, number, member or None)
    except Problem as problem:
        return _links_page(request, ctx, shown.failed(ctx, t, problem, "bank", values, "account_no"), problem.status)
    return see_other(request, LINKS, "bank_linked", link.masked)


@router.post(f"{LINKS}/remove", response_class=HTMLResponse)
def unlink(request: Request, ctx: ResidentPage, kind: Annotated[str, Form(max_length=16)] = "",
           member: Annotated[str, Form(max_length=64)] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    try:
        if kind not in KINDS:
            raise Invalid("A link is insurance or bank.", code="link_kind_invalid")
        payments.unlink(ctx, kind, member or None)
    except Problem as problem:
        return _links_page(request, ctx, shown.failed(ctx, t, problem, "remove"), problem.status)
    return see_other(request, LINKS, "link_removed")
