"""What the payment pages of both audiences share (the cashier's and the resident's): a bill, its items,
its split and its receipt shaped for a template, and a payment refusal's message in the page's language.

Everything comes from the payments service (``payments.service``): the pages decide nothing about
money. Amounts stay integer fen here; templates show them with the ``yuan`` filter (``core.yuan``).
"""

from __future__ import annotations

from typing import Any

from ..kit.clock import in_china
from ..kit.context import Ctx
from ..kit.errors import Problem
from ..payments import service as payments
from . import forms, i18n
from .core import problem_params

CATEGORIES = ("A", "B", "C")  # the insurance catalogue's classes: 甲 A, 乙 B, 丙 C


def when(moment) -> str:  # noqa: ANN001
    return in_china(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def status_label(t: i18n.Translator, status: str) -> str:
    key = f"payments.status.{status}"
    return t(key) if t.has(key) else status


def bill_row(ctx: Ctx, t: i18n.Translator, bill: payments.Bill, *, base: str) -> dict[str, Any]:
    """A bill in a list: enough to pick it."""
    return {"id": bill.id, "bill_no": bill.bill_no, "href": f"{base}/{bill.id}", "status": bill.status,
            "status_label": status_label(t, bill.status), "total_fen": bill.total_fen,
            "institution": payments.institution_name(ctx, bill) or bill.institution_id,
            "created": when(bill.created_at), "paid": when(bill.paid_at)}


def open_first(bills: list[payments.Bill]) -> list[payments.Bill]:
    """Bills still to pay (open, then settling) before the rest, each group newest first as the service lists them."""
    order = {"open": 0, "settling": 1}
    return sorted(bills, key=lambda b: order.get(b.status, 2))


def items_view(ctx: Ctx, t: i18n.Translator, bill: payments.Bill) -> list[dict[str, Any]]:
    return [{"line": i.line, "code": i.code, "name": i.name, "category": i.category,
             "category_label": t(f"payments.category.{i.category}") if i.category in CATEGORIES else i.category,
             "self_share": f"{i.self_share_permille / 10:g}%" if i.self_share_permille else "",
             "quantity": i.quantity, "unit_price_fen": i.unit_price_fen, "amount_fen": i.amount_fen}
            for i in payments.items_of(ctx, bill)]


def split_view(ctx: Ctx, t: i18n.Translator, bill: payments.Bill) -> dict[str, Any]:
    """The pre-settlement (预结算) of a bill still to pay; a service that does not answer is said in words."""
    if bill.status not in ("open", "settling"):
        return {"shown": False, "error": ""}
    try:
        split = payments.quote(ctx, bill)
    except Problem as problem:
        return {"shown": False, "error": message(t, problem)}
    return {"shown": True, "error": "", "total_fen": split.total_fen, "fund_fen": split.fund_fen,
            "account_fen": split.account_fen, "cash_fen": split.cash_fen, "deductible_fen": split.deductible_fen,
            "insured": split.insured}


# Why a settlement failed, as the service records it (``payments.service``: "bank declined: <reason>",
# "insurer refused: <code>", ...), in the page's language; the service's words for anything else.
_FAILURES = (("bank declined: ", "bank_declined"), ("insurer refused: ", "insurer_refused"),
             ("no bank card linked", "no_bank"), ("the insurance service did not answer", "insurer_silent"),
             ("the bank did not answer", "bank_silent"))


def failure_text(t: i18n.Translator, failure: str | None) -> str:
    text = failure or ""
    for prefix, key in _FAILURES:
        if text.startswith(prefix):
            return t(f"payments.failure.{key}", reason=text[len(prefix):])
    return text


def settlement_view(ctx: Ctx, t: i18n.Translator, bill: payments.Bill) -> dict[str, Any] | None:
    """The bill's settlement: the receipt once paid, where it got while settling, why a try failed."""
    row = payments.settlement_of(ctx, bill)
    if row is None:
        return None
    return {"status": row.status, "status_label": t(f"payments.settlement_status.{row.status}")
            if t.has(f"payments.settlement_status.{row.status}") else row.status,
            "paid": row.status == "paid", "failed": row.status == "failed",
            "via": t(f"payments.via.{row.via}") if t.has(f"payments.via.{row.via}") else row.via,
            "receipt_no": row.receipt_no or "", "fund_fen": row.fund_fen, "account_fen": row.account_fen,
            "cash_fen": row.cash_fen, "failure": failure_text(t, row.failure), "started": when(row.created_at),
            "finished": when(row.finished_at)}


def bill_view(ctx: Ctx, t: i18n.Translator, bill: payments.Bill) -> dict[str, Any]:
    return {"id": bill.id, "bill_no": bill.bill_no, "status": bill.status, "status_label": status_label(t, bill.status),
            "total_fen": bill.total_fen, "refunded_fen": bill.refunded_fen,
            "institution": payments.institution_name(ctx, bill) or bill.institution_id,
            "created": when(bill.created_at), "paid": when(bill.paid_at),
            "payable": bill.status == "open", "settling": bill.status == "settling",
            "lines": items_view(ctx, t, bill), "split": split_view(ctx, t, bill),
            "settlement": settlement_view(ctx, t, bill)}


def message(t: i18n.Translator, problem: Problem) -> str:
    """A payment refusal in the page's language: the payment messages first, then the shared ones."""
    key = f"payments.errors.{problem.code}"
    if t.has(key):
        return t(key, **problem_params(problem))
    return forms.message(t, problem.code, problem_params(problem), problem.detail)


def failed(ctx: Ctx, t: i18n.Translator, problem: Problem, form: str, values: dict[str, str] | None = None,
           field: str = "") -> forms.FormState:
    """Undo whatever the service got to, and say what was wrong (against ``field`` when given)."""
    ctx.session.rollback()
    state = forms.FormState(values=values or {}, form=form)
    state.add(field, message(t, problem))
    return state
