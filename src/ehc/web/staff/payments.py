"""Payment pages for staff: the cashier's (the institution's bills, open first; one bill with its items,
its split and a scan field that settles it with the resident's two-in-one code, then its receipt) and
finance's (a day's reconciliation with both services' statements, its CSV, and the ledger check).

Each page applies the rule of its API (``payments.auth``): ``BillReader`` to see bills, ``Cashier`` to
settle one, ``Finance`` for reconciliation and the ledger. Every rule about money stays in
``payments.service``; a refusal is shown above the form in the page's language.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...kit.clock import china_today
from ...kit.errors import Invalid, Problem, field_error
from ...payments import service as payments
from ...payments.auth import BillReader, Cashier, Finance
from .. import i18n
from .. import payments as shown
from ..core import PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import Staff, passes, rule_of, staff_page, page_under

router = APIRouter(route_class=PageRoute, include_in_schema=False)
cashier_rule = rule_of(Cashier)
BASE = "/staff/payments"
# How long settling waits for the insurer and the bank before the page answers (as the API's 8 s): the
# outbox finishes a slower one in the background and the bill's page shows where it got.
SETTLE_WAIT = 8.0

ReaderPage, CashierPage, FinancePage = (page_under(a) for a in (BillReader, Cashier, Finance))


# -- finance: reconciliation and the ledger (before /{bill_id}, which would match its path) --------

def _day(value: str) -> date:
    if not value:
        return china_today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("A day is written YYYY-MM-DD.", code="day_invalid",
                      errors=[field_error("day", "day_invalid", "YYYY-MM-DD")]) from None


def _reconciliation_page(request: Request, staff: Staff, day: date, state: FormState | None = None,
                         status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    rows = payments.findings_of(ctx, day)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.finding] = counts.get(r.finding, 0) + 1
    findings = [{"source": t(f"payments.source.{r.source}") if t.has(f"payments.source.{r.source}") else r.source,
                 "platform_id": r.platform_id, "finding": r.finding,
                 "finding_label": t(f"payments.finding.{r.finding}") if t.has(f"payments.finding.{r.finding}")
                 else r.finding, "ours_fen": r.ours_fen, "theirs_fen": r.theirs_fen, "detail": r.detail}
                for r in rows]
    check = payments.check_ledger(ctx)
    ledger = {"balanced": check.balanced, "transactions": check.transactions, "problems": check.problems,
              "balances": sorted(check.balances.items())}
    pending = [{"kind": s.kind, "subject": s.subject_id, "attempts": s.attempts, "due": shown.when(s.due_at),
                "error": s.last_error or ""} for s in payments.pending(ctx)]
    return staff_page(request, staff, "staff_payments_reconciliation.html", status_code, nav="staff_finance",
                      day=day.isoformat(), counts=[(t(f"payments.finding.{k}"), n) for k, n in sorted(counts.items())],
                      findings=findings, ledger=ledger, pending=pending, state=state or FormState(),
                      csv_url=f"{BASE}/reconciliation.csv?day={day.isoformat()}")


@router.get(f"{BASE}/reconciliation", response_class=HTMLResponse)
def reconciliation(request: Request, staff: FinancePage,
                   day: Annotated[str, Query(max_length=10)] = "") -> HTMLResponse:
    return _reconciliation_page(request, staff, _day(day))


@router.post(f"{BASE}/reconciliation", response_class=HTMLResponse)
def reconcile(request: Request, staff: FinancePage, day: Annotated[str, Form(max_length=10)] = "",
              csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    t = i18n.for_request(request)
    try:
        chosen = _day(day)
        done = payments.reconcile(staff.ctx, chosen)
    except Problem as problem:
        state = shown.failed(staff.ctx, t, problem, "reconcile", {"day": day}, "day" if problem.errors else "")
        return _reconciliation_page(request, staff, china_today() if problem.code == "day_invalid" else chosen,
                                    state, problem.status)
    flash = ("reconciled_findings" if not done.clean else "reconciled_repaired" if done.counts.get("repaired")
             else "reconciled_clean")
    return see_other(request, f"{BASE}/reconciliation?day={chosen.isoformat()}", flash, chosen.isoformat())


@router.get(f"{BASE}/reconciliation.csv")
def reconciliation_csv(staff: FinancePage, day: Annotated[str, Query(max_length=10)] = "") -> Response:
    chosen = _day(day)
    return Response(payments.findings_csv(payments.findings_of(staff.ctx, chosen)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="reconciliation-{chosen.isoformat()}.csv"',
                             "Cache-Control": "no-store"})


# -- the cashier ------------------------------------------------------------------------------------

@router.get(BASE, response_class=HTMLResponse)
def bills(request: Request, staff: ReaderPage) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    rows = [shown.bill_row(ctx, t, b, base=BASE) for b in shown.open_first(payments.hospital_bills(ctx))]
    return staff_page(request, staff, "staff_payments.html", nav="staff_payments", rows=rows,
                      institution=staff.institution.name if staff.institution else "")


def _bill_page(request: Request, staff: Staff, bill_id: str, state: FormState | None = None,
               status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    bill = payments.hospital_bill(staff.ctx, bill_id)
    return staff_page(request, staff, "staff_payment_bill.html", status_code, nav="staff_payments",
                      bill=shown.bill_view(staff.ctx, t, bill), may_settle=passes(cashier_rule, staff),
                      state=state or FormState())


@router.get(f"{BASE}/{{bill_id}}", response_class=HTMLResponse)
def bill(request: Request, bill_id: str, staff: ReaderPage) -> HTMLResponse:
    return _bill_page(request, staff, bill_id)


@router.post(f"{BASE}/{{bill_id}}/settle", response_class=HTMLResponse)
def settle(request: Request, bill_id: str, staff: CashierPage, code: Annotated[str, Form(max_length=4000)] = "",
           csrf_token: Annotated[str, Form()] = "") -> Response:
    """The scanner typed the resident's two-in-one code into the field: settle the bill with it."""
    require_csrf(request, staff.ctx, csrf_token)
    t = i18n.for_request(request)
    text = code.strip()
    if not text:
        state = FormState(form="settle")
        state.add("code", t("errors.required"))
        return _bill_page(request, staff, bill_id, state, 422)
    try:
        row = payments.settle_by_code(staff.ctx, bill_id, text)
    except Problem as problem:
        return _bill_page(request, staff, bill_id, shown.failed(staff.ctx, t, problem, "settle", field="code"),
                          problem.status)
    row = payments.settle_and_wait(staff.ctx, row, SETTLE_WAIT)
    flash = {"paid": "bill_settled", "failed": "settlement_failed"}.get(row.status, "settlement_pending")
    return see_other(request, f"{BASE}/{bill_id}", flash, row.receipt_no or "")
