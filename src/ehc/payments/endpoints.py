"""Payments API: thin. Parse, authorise (auth.py), call service.py, shape the answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from ..kit import idempotency
from ..kit.context import Ctx
from ..kit.errors import Invalid
from . import service
from .auth import BillReader, CallbackCaller, Cashier, Finance, Payer
from .schemas import (
    BillCodeOut,
    BillIn,
    BillOut,
    FindingOut,
    ItemOut,
    LedgerCheckOut,
    LinkBankIn,
    LinkInsuranceIn,
    LinkOut,
    ReconciliationOut,
    RefundIn,
    RefundOut,
    SettleIn,
    SettlementOut,
    SplitOut,
)

router = APIRouter(tags=["payments"])
API = "/api/v1/payments"
ME = "/api/v1/me/payments"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
# How long a settlement request waits for the insurer and the bank before answering 202 (the outbox
# finishes it in the background; the bill's status tells the cashier when it did).
SETTLE_WAIT = 8.0


def settlement_out(row: service.Settlement) -> SettlementOut:
    return SettlementOut(id=row.id, status=row.status, via=row.via, fund_fen=row.fund_fen, account_fen=row.account_fen,
                         cash_fen=row.cash_fen, receipt_no=row.receipt_no, failure=row.failure,
                         created_at=row.created_at, finished_at=row.finished_at)


def refund_out(row: service.Refund) -> RefundOut:
    return RefundOut(id=row.id, refund_no=row.refund_no, status=row.status, amount_fen=row.amount_fen,
                     fund_fen=row.fund_fen, account_fen=row.account_fen, cash_fen=row.cash_fen, reason=row.reason,
                     created_at=row.created_at, finished_at=row.finished_at)


def bill_out(ctx: Ctx, bill: service.Bill, *, full: bool = True) -> BillOut:
    out = BillOut(id=bill.id, bill_no=bill.bill_no, institution_id=bill.institution_id,
                  institution_name=service.institution_name(ctx, bill), status=bill.status, total_fen=bill.total_fen,
                  refunded_fen=bill.refunded_fen, institution_level=bill.institution_level, created_at=bill.created_at,
                  paid_at=bill.paid_at)
    if full:
        out.items = [ItemOut(line=i.line, code=i.code, name=i.name, category=i.category,
                             self_share_permille=i.self_share_permille, quantity=i.quantity,
                             unit_price_fen=i.unit_price_fen, amount_fen=i.amount_fen) for i in service.items_of(ctx, bill)]
        settlement = service.settlement_of(ctx, bill)
        out.settlement = settlement_out(settlement) if settlement else None
        out.refunds = [refund_out(r) for r in service.refunds_of(ctx, bill)]
    return out


def _settled(ctx: Ctx, row: service.Settlement, response: Response) -> SettlementOut:
    row = service.settle_and_wait(ctx, row, SETTLE_WAIT)
    response.status_code = 200 if row.status in ("paid", "failed") else 202
    return settlement_out(row)


# -- hospitals: bills, settlement at the cashier, refunds -------------------------------------------

@router.post(f"{API}/bills", response_model=BillOut, status_code=201,
             responses={200: {"model": BillOut, "description": "this bill_no was sent before: the stored bill"}},
             summary="Send a bill for a card (the same bill_no again returns the stored bill)")
def create_bill(body: BillIn, ctx: Cashier, response: Response) -> BillOut:
    bill, created = service.create_bill(ctx, body.bill_no, body.ehc_id, [i.model_dump() for i in body.items])
    response.status_code = 201 if created else 200
    return bill_out(ctx, bill)


@router.get(f"{API}/bills", response_model=list[BillOut], summary="This institution's bills, newest first")
def list_bills(ctx: BillReader, status: Annotated[str | None, Query(pattern="^(open|settling|paid|refunded)$")] = None
               ) -> list[BillOut]:
    return [bill_out(ctx, b, full=False) for b in service.hospital_bills(ctx, status)]


@router.get(f"{API}/bills/{{bill_id}}", response_model=BillOut, summary="A bill with its items, settlement and refunds")
def get_bill(bill_id: str, ctx: BillReader) -> BillOut:
    return bill_out(ctx, service.hospital_bill(ctx, bill_id))


@router.post(f"{API}/bills/{{bill_id}}/presettle", response_model=SplitOut,
             summary="Pre-settlement: how the insurer and the bank would split the bill now (nothing is charged)")
def presettle(bill_id: str, ctx: BillReader) -> SplitOut:
    return SplitOut.of(service.quote(ctx, service.hospital_bill(ctx, bill_id)))


@router.post(f"{API}/bills/{{bill_id}}/settle", response_model=SettlementOut,
             responses={202: {"model": SettlementOut, "description": "still settling; the bill's status will tell"}},
             summary="Settle with the two-in-one code the cashier scanned (a card use at the payment step)")
def settle(bill_id: str, body: SettleIn, ctx: Cashier, response: Response) -> SettlementOut:
    row = service.settle_by_code(ctx, bill_id, body.code, care_step=body.care_step, terminal_id=body.terminal_id)
    return _settled(ctx, row, response)


@router.post(f"{API}/bills/{{bill_id}}/refunds", response_model=RefundOut, status_code=201,
             summary="Refund a paid bill, fully or in part (insurer's and bank's shares in proportion)")
def create_refund(bill_id: str, body: RefundIn, ctx: Cashier, response: Response) -> RefundOut:
    row, created = service.refund(ctx, bill_id, body.refund_no, body.amount_fen, body.reason)
    service.drive(ctx, [row.id], wait=SETTLE_WAIT if created else 0.0)
    ctx.session.refresh(row)
    response.status_code = 201 if created else 200
    return refund_out(row)


@router.post(f"{API}/callbacks/bank", status_code=204, summary="The bank's signed notice of a charge's or refund's result")
async def bank_callback(request: Request, ctx: CallbackCaller, x_signature: Annotated[str | None, Header()] = None
                        ) -> Response:
    service.bank_callback(ctx, await request.body(), x_signature)
    return Response(status_code=204)


# -- finance ----------------------------------------------------------------------------------------

def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("A day is YYYY-MM-DD.", code="day_invalid") from None


@router.post(f"{API}/reconciliation/{{day}}", response_model=ReconciliationOut,
             summary="Reconcile a day: both services' statements against the ledger, repairing what they prove")
def reconcile(day: str, ctx: Finance) -> ReconciliationOut:
    result = service.reconcile(ctx, _day(day))
    return ReconciliationOut(day=day, counts=result.counts, findings=[
        FindingOut(**vars(f)) for f in result.findings if f.finding != "matched"])


@router.get(f"{API}/reconciliation/{{day}}", response_model=ReconciliationOut,
            summary="A day's stored reconciliation findings (what did not match)")
def findings(day: str, ctx: Finance) -> ReconciliationOut:
    rows = service.findings_of(ctx, _day(day))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.finding] = counts.get(r.finding, 0) + 1
    return ReconciliationOut(day=day, counts=counts, findings=[
        FindingOut(source=r.source, platform_id=r.platform_id, finding=r.finding, ours_fen=r.ours_fen,
                   theirs_fen=r.theirs_fen, detail=r.detail) for r in rows])


@router.get(f"{API}/ledger/check", response_model=LedgerCheckOut, summary="Prove the books balance")
def ledger_check(ctx: Finance) -> LedgerCheckOut:
    check = service.check_ledger(ctx)
    return LedgerCheckOut(balanced=check.balanced, transactions=check.transactions, problems=check.problems,
                          balances=check.balances)


# -- residents --------------------------------------------------------------------------------------

def link_out(row: service.PaymentLink) -> LinkOut:
    return LinkOut(kind=row.kind, masked=row.masked, scheme=row.scheme, created_at=row.created_at)


@router.post(f"{ME}/insurance", response_model=LinkOut, status_code=201,
             summary="Link my medical insurance (or a family member's I guard), checked by the insurer")
def link_insurance(body: LinkInsuranceIn, ctx: Payer) -> LinkOut:
    return link_out(service.link_insurance(ctx, body.member))


@router.post(f"{ME}/bank", response_model=LinkOut, status_code=201,
             summary="Link a bank card: the bank answers a token; only it and the masked number are kept")
def link_bank(body: LinkBankIn, ctx: Payer) -> LinkOut:
    return link_out(service.link_bank(ctx, body.account_no, body.member))


@router.get(f"{ME}/links", response_model=list[LinkOut], summary="What is linked to my card (or a member's)")
def my_links(ctx: Payer, member: Annotated[str | None, Query(max_length=64)] = None) -> list[LinkOut]:
    return [link_out(r) for r in service.links(ctx, member)]


@router.delete(f"{ME}/links/{{kind}}", status_code=204, summary="Remove a link")
def unlink(kind: str, ctx: Payer, member: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    if kind not in ("insurance", "bank"):
        raise Invalid("A link is insurance or bank.", code="link_kind_invalid")
    service.unlink(ctx, kind, member)
    return Response(status_code=204)


@router.get("/api/v1/me/bills", response_model=list[BillOut], summary="My bills and my family members'")
def my_bills(ctx: Payer) -> list[BillOut]:
    return [bill_out(ctx, b, full=False) for b in service.my_bills(ctx)]


@router.get("/api/v1/me/bills/{bill_id}", response_model=BillOut, summary="One of my bills, with its receipt")
def my_bill(bill_id: str, ctx: Payer) -> BillOut:
    return bill_out(ctx, service.my_bill(ctx, bill_id))


@router.post("/api/v1/me/bills/{bill_id}/presettle", response_model=SplitOut,
             summary="How insurance and my bank card would split this bill")
def my_presettle(bill_id: str, ctx: Payer) -> SplitOut:
    return SplitOut.of(service.quote(ctx, service.my_bill(ctx, bill_id)))


@router.post("/api/v1/me/bills/{bill_id}/code", response_model=BillCodeOut,
             summary="A two-in-one code to show at the cashier: pays this bill, this amount, once")
def my_bill_code(bill_id: str, ctx: Payer) -> BillCodeOut:
    code = service.draw_bill_code(ctx, bill_id)
    return BillCodeOut(code=code.text, expires_at=code.expires_at, amount_fen=code.amount_fen)


@router.post("/api/v1/me/bills/{bill_id}/pay", response_model=SettlementOut,
             responses={202: {"model": SettlementOut, "description": "still settling"}},
             summary="Pay this bill from the app: insurance first, the bank card the rest")
def my_pay(bill_id: str, ctx: Payer, response: Response, idempotency_key: IdempotencyKey = None) -> SettlementOut:
    row, _ = idempotency.run_once(ctx, idempotency_key, "payments.pay", {"bill": bill_id}, response,
                                  lambda: (service.settle_in_app(ctx, bill_id), True),
                                  ref=lambda r: r.id, load=lambda ref: service.settlement_by_id(ctx, ref))
    if response.headers.get("Idempotent-Replayed"):
        return settlement_out(row)
    return _settled(ctx, row, response)
