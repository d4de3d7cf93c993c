"""Payments: a hospital's bill settled by medical insurance and the bank from one code (docs/payments.md).

The flow of one bill:

1. The hospital sends the bill (signed API): items in fen with their insurance category. The ledger
   posts it: the patients owe the hospital the total.
2. Anyone looking at it (cashier, resident) sees the split: a pre-settlement (预结算) at the insurer.
3. Settlement starts when the cashier scans the resident's two-in-one code (a card use at care step
   0101051) or the resident confirms in the app. One transaction stores the settlement and its first
   step in the outbox (``payment_steps``) and commits before any call leaves. At most one settlement
   of a bill is live (a unique constraint), so concurrent confirmations settle once.
4. The outbox driver (:func:`drive`) runs the steps: ``settle_insurance`` (the insurer's share), then
   ``charge_bank`` (the rest). Each call is idempotent at the service (the settlement's id is the
   request's id); an uncertain answer (timeout, 5xx) is retried with backoff; a definite refusal
   decides. A bank decline after insurance settled queues ``reverse_insurance`` (冲正) and the bill is
   open again. An insurer that never answers is given up on after ``GIVE_UP_AFTER`` tries by reversing
   (the insurer then refuses a late settle of that id); a bank that never answers is asked to cancel
   the charge, which either stops a late charge or tells that it went through.
5. Refunds post ``refund_insurance`` and ``refund_bank`` for the shares in proportion.
6. Reconciliation (:func:`reconcile`) matches each service's daily statement against the ledger.

The driver runs inline in the request that starts a settlement (the cashier usually gets the result at
once), then in the background (``ehc serve``) and from ``ehc payments drive``; a crash anywhere leaves
due steps that the next driver resumes.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from ..cards import service as cards
from ..cards.service import Card
from ..institutions import service as institutions
from ..kit.clock import CHINA, in_china, utcnow
from ..kit import resealing
from ..kit.context import Ctx
from ..kit.errors import Conflict, Forbidden, Invalid, NotFound, Problem, field_error
from ..kit.ids import new_id
from ..me import service as me
from ..qr import service as qr
from . import remote as remotes
from . import repository as repo
from . import sandbox
from .models import Bill, BillItem, LedgerEntry, PaymentCode, PaymentLink, ReconciliationItem, Refund, Settlement, Step
from .remote import Refused, Remote, Uncertain
from .schemas import (
    MEDICAL_PAYMENT,
    BillNotFound,
    PaymentChannelUnknown,
    PaymentCodeAltered,
    PaymentCodeExpired,
    PaymentCodeReplayed,
    PaymentsUnavailable,
    PaymentToken,
    PaymentTokenInvalid,
    Split,
)

# The payment domain's face: what a channel hands back and the problems it answers with, too.
__all__ = ["MEDICAL_PAYMENT", "PaymentChannel", "PaymentChannelUnknown", "PaymentToken", "PaymentTokenInvalid",
           "CHANNELS", "SANDBOX_ONLY", "available", "channel", "Bill", "Settlement", "Refund", "PaymentLink",
           "Split", "Step"]

log = logging.getLogger("ehc.payments")
PaymentChannel = qr.PaymentChannel

# -- payment channels of two-in-one codes -----------------------------------------------------------


def _sandbox(ctx: Ctx) -> PaymentChannel:
    return sandbox.for_keys(ctx.vault.keys)


# name → factory; a factory may look at the settings (the sandbox stays out of production).
CHANNELS: dict[str, Callable[[Ctx], sandbox.SandboxChannel]] = {"sandbox": _sandbox}
SANDBOX_ONLY = frozenset({"sandbox"})


def channel(ctx: Ctx, name: str) -> sandbox.SandboxChannel:
    """The payment channel called ``name``, or a 422 ``payment_channel_unknown``."""
    factory = CHANNELS.get(name)
    if factory is None or (name in SANDBOX_ONLY and ctx.settings.environment == "production"):
        raise PaymentChannelUnknown(
            f"No payment channel {name!r} here; known: {', '.join(available(ctx)) or 'none'}.",
            errors=[field_error("payment", "payment_channel_unknown", "not a payment channel")],
        )
    return factory(ctx)


def available(ctx: Ctx) -> list[str]:
    production = ctx.settings.environment == "production"
    return sorted(n for n in CHANNELS if not (production and n in SANDBOX_ONLY))


# -- the services -----------------------------------------------------------------------------------

def configured(ctx: Ctx) -> bool:
    return bool(ctx.settings.insurance_url and ctx.settings.bank_url)


def _not_offered() -> NotFound:
    # A platform without an insurer and a bank takes no payments at all: nothing to retry later (a 503
    # would say "come back"), so the payment resources are simply not here.
    return NotFound("This platform takes no payments: no insurance service and bank are configured "
                    "(EHC_INSURANCE_URL, EHC_BANK_URL).", code="payments_not_offered")


def _insurer(ctx: Ctx) -> Remote:
    if not configured(ctx):
        raise _not_offered()
    return remotes.remote("insurer", ctx.settings.insurance_url, ctx.settings.payments_timeout)


def _bank(ctx: Ctx) -> Remote:
    if not configured(ctx):
        raise _not_offered()
    return remotes.remote("bank", ctx.settings.bank_url, ctx.settings.payments_timeout)


def _call(ctx: Ctx, service: Remote, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call to a service with no transaction open meanwhile: what was read or written so far is
    committed first, so a slow service holds no row lock (and on SQLite, not the one write lock)."""
    ctx.session.commit()
    return service.call(method, path, body)


def _unreachable(service: str) -> Problem:
    return PaymentsUnavailable(f"The {service} does not answer now; try again in a moment.", code="payment_service_unreachable")


# -- links ------------------------------------------------------------------------------------------

def _resident_card(ctx: Ctx, member: str | None) -> Card:
    return me.guarded_card(ctx, member)[0] if member else me.my_card(ctx)


def _seal_context(person_id: str, kind: str) -> str:
    return f"payment_link:{person_id}:{kind}"


def _replace_link(ctx: Ctx, person_id: str, kind: str, reference: str, masked: str, scheme: str | None) -> PaymentLink:
    old = repo.live_link(ctx.session, person_id, kind)
    if old is not None:
        old.live_key, old.removed_at = None, utcnow()
        ctx.session.flush()
    link = PaymentLink(id=new_id(), person_id=person_id, kind=kind, live_key=f"{person_id}:{kind}",
                       reference_sealed=ctx.vault.seal(reference, _seal_context(person_id, kind)),
                       masked=masked, scheme=scheme, linked_by=ctx.actor.id or "-")
    ctx.session.add(link)
    ctx.session.flush()
    return link


def link_insurance(ctx: Ctx, member: str | None = None) -> PaymentLink:
    """Link the card holder's medical insurance: the insurer checks the document behind the card."""
    card = _resident_card(ctx, member)
    _, details, identifiers = cards.holder(ctx, card, purpose="payments.link_insurance")
    document = next((i for i in identifiers if i.system.startswith("doc:")), None)
    if document is None or not details.name:
        raise Conflict("This card has no document the insurer could check.", code="no_document")
    try:
        found = _call(ctx, _insurer(ctx), "POST", "/v1/insured/verify", {
            "document_type": document.system.removeprefix("doc:"), "document_number": document.value,
            "name": details.name})
    except Refused as exc:
        if exc.code == "not_insured":
            raise Conflict("The insurer finds no insured person with this card's document and name.",
                           code="not_insured") from None
        raise Conflict(f"The insurer refused the link ({exc.code}).", code="insurance_refused") from None
    except Uncertain:
        raise _unreachable("insurance service") from None
    insured_id = str(found["insured_id"])
    return _replace_link(ctx, card.person_id, "insurance", insured_id, _mask(insured_id), str(found.get("scheme")))


def link_bank(ctx: Ctx, account_no: str, member: str | None = None) -> PaymentLink:
    """Link a bank card: the bank answers a token; the platform keeps it (sealed) and the masked number."""
    card = _resident_card(ctx, member)
    _, details, _ = cards.holder(ctx, card, purpose="payments.link_bank")
    try:
        answer = _call(ctx, _bank(ctx), "POST", "/v1/tokens", {"account_no": account_no, "holder_name": details.name or ""})
    except Refused:
        raise Conflict("The bank knows no such account in the card holder's name.", code="bank_account_refused",
                       errors=[field_error("account_no", "bank_account_refused", "not this holder's account")]) from None
    except Uncertain:
        raise _unreachable("bank") from None
    return _replace_link(ctx, card.person_id, "bank", str(answer["token"]), str(answer["masked"]), None)


def links(ctx: Ctx, member: str | None = None) -> list[PaymentLink]:
    return repo.live_links(ctx.session, _resident_card(ctx, member).person_id)


def unlink(ctx: Ctx, kind: str, member: str | None = None) -> None:
    link = repo.live_link(ctx.session, _resident_card(ctx, member).person_id, kind)
    if link is None:
        raise Conflict(f"No {kind} is linked.", code="not_linked")
    link.live_key, link.removed_at = None, utcnow()
    ctx.session.flush()


def _mask(value: str) -> str:
    return value[:3] + "*" * max(0, len(value) - 7) + value[-4:]


def _reference(ctx: Ctx, link: PaymentLink | None) -> str | None:
    return ctx.vault.open(link.reference_sealed, _seal_context(link.person_id, link.kind)) if link else None


# -- bills ------------------------------------------------------------------------------------------

def _institution_level(ctx: Ctx, institution_id: str) -> int:
    """1 primary (community centres, clinics), 2 secondary, 3 tertiary, from the institution's grade."""
    institution = institutions.find_institution(ctx.session, institution_id)
    grade = (institution.level or "") if institution else ""
    if grade[:1] in ("1", "2", "3"):
        return int(grade[:1])
    return 2 if institution is not None and institution.kind == "hospital" else 1


def _digest(items: list[dict[str, Any]]) -> str:
    return hashlib.sha256(repr(sorted((sorted(i.items()) for i in items))).encode()).hexdigest()


def create_bill(ctx: Ctx, bill_no: str, ehc_id: str, items: list[dict[str, Any]]) -> tuple[Bill, bool]:
    """The hospital's bill for a card. Sending the same ``bill_no`` again returns the stored bill
    (``created`` False); the same number with other items is refused."""
    institution_id = _my_institution(ctx)
    digest = _digest(items)
    existing = repo.bill_by_number(ctx.session, institution_id, bill_no)
    if existing is not None:
        if existing.digest != digest:
            raise Conflict("This bill number was sent before with other items.", code="bill_no_reused")
        return existing, False
    card = cards.get_card(ctx, ehc_id)
    for item in items:
        if item["category"] != "B" and item.get("self_share_permille"):
            raise Invalid("Only a class B item has a self-paid share.", code="self_share_not_b",
                          errors=[field_error("items", "self_share_not_b", "self_share_permille on a non-B item")])
    bill = Bill(id=new_id(), institution_id=institution_id, bill_no=bill_no, person_id=card.person_id,
                ehc_id=card.ehc_id, institution_level=_institution_level(ctx, institution_id),
                total_fen=sum(i["quantity"] * i["unit_price_fen"] for i in items), digest=digest)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(bill)
            ctx.session.flush()
    except IntegrityError:  # the same number sent twice at once: the other one stored it
        existing = repo.bill_by_number(ctx.session, institution_id, bill_no)
        if existing is None or existing.digest != digest:
            raise Conflict("This bill number was sent before with other items.", code="bill_no_reused") from None
        return existing, False
    for line, item in enumerate(items, start=1):
        ctx.session.add(BillItem(bill_id=bill.id, line=line, code=item["code"], name=item["name"],
                                 category=item["category"], self_share_permille=item.get("self_share_permille", 0),
                                 quantity=item["quantity"], unit_price_fen=item["unit_price_fen"],
                                 amount_fen=item["quantity"] * item["unit_price_fen"]))
    _post(ctx, f"bill:{bill.id}", "bill", bill.id,
          [("patients", bill.total_fen, 0), (f"hospital:{institution_id}", 0, bill.total_fen)])
    ctx.session.flush()
    return bill, True


def _my_institution(ctx: Ctx) -> str:
    if not ctx.actor.institution_id:
        raise Forbidden("Only an institution's cashier or hospital system handles bills.", code="not_an_institution")
    return ctx.actor.institution_id


def hospital_bill(ctx: Ctx, bill_id: str) -> Bill:
    """A bill of the caller's institution (another institution's answers 404, like a missing one)."""
    bill = repo.bill(ctx.session, bill_id)
    if bill is None or bill.institution_id != _my_institution(ctx):
        raise BillNotFound("No such bill here.")
    return bill


def hospital_bills(ctx: Ctx, status: str | None = None) -> list[Bill]:
    return repo.bills_at(ctx.session, _my_institution(ctx), status)


def _my_people(ctx: Ctx) -> set[str]:
    people = {me.my_card(ctx).person_id}
    people |= {card.person_id for _, card in me.family(ctx) if card is not None}
    return people


def my_bills(ctx: Ctx) -> list[Bill]:
    return repo.bills_of(ctx.session, _my_people(ctx))


def my_bill(ctx: Ctx, bill_id: str) -> Bill:
    bill = repo.bill(ctx.session, bill_id)
    if bill is None or bill.person_id not in _my_people(ctx):
        raise BillNotFound("No such bill of yours.")
    return bill


def items_of(ctx: Ctx, bill: Bill) -> list[BillItem]:
    return repo.items(ctx.session, bill.id)


def institution_name(ctx: Ctx, bill: Bill) -> str | None:
    institution = institutions.find_institution(ctx.session, bill.institution_id)
    return institution.name if institution else None


def _items_wire(ctx: Ctx, bill: Bill) -> list[dict[str, Any]]:
    return [{"code": i.code, "name": i.name, "category": i.category, "self_share_permille": i.self_share_permille,
             "quantity": i.quantity, "unit_price_fen": i.unit_price_fen} for i in repo.items(ctx.session, bill.id)]


def quote(ctx: Ctx, bill: Bill) -> Split:
    """The split the insurer would settle now (预结算): nothing is recorded anywhere."""
    insured = _reference(ctx, repo.live_link(ctx.session, bill.person_id, "insurance"))
    if insured is None:
        return Split(bill.total_fen, 0, 0, bill.total_fen)
    try:
        answer = _call(ctx, _insurer(ctx), "POST", "/v1/presettle", {
            "insured_id": insured, "institution_level": bill.institution_level,
            "items": _items_wire(ctx, bill), "use_account": True})
    except Refused:
        return Split(bill.total_fen, 0, 0, bill.total_fen)
    except Uncertain:
        raise _unreachable("insurance service") from None
    return Split(bill.total_fen, int(answer["fund_fen"]), int(answer["account_fen"]), int(answer["cash_fen"]),
                 int(answer.get("deductible_fen", 0)), True)


# -- two-in-one codes bound to a bill ---------------------------------------------------------------

def _bill_purpose(bill: Bill) -> str:
    # The cryptogram of the payment part covers the purpose, so a code drawn for this bill and this
    # amount fails for any other bill or amount (payment_code_altered).
    return f"{MEDICAL_PAYMENT}/{bill.id}/{bill.total_fen}"


def _token_digest(ctx: Ctx, token: str) -> str:
    return ctx.vault.blind("payment_code", token)


@dataclass
class _BoundToBill:
    """The sandbox channel's template, made for one bill's purpose; remembers what it drew."""

    inner: sandbox.SandboxChannel
    purpose: str
    drawn: list[bytes]
    name: str = "bill"

    def template_for(self, card: Card, *, purpose: str, now: datetime) -> bytes:
        template = self.inner.template_for(card, purpose=self.purpose, now=now)
        self.drawn.append(template)
        return template


@dataclass(frozen=True)
class BillCode:
    text: str
    expires_at: datetime
    amount_fen: int


def draw_bill_code(ctx: Ctx, bill_id: str) -> BillCode:
    """A two-in-one code whose payment part pays this bill, this amount, once, before it expires."""
    bill = my_bill(ctx, bill_id)
    _payable(bill)
    bound = _BoundToBill(channel(ctx, "sandbox"), _bill_purpose(bill), [])
    issued = qr.issue_dynamic(ctx, cards.get_card(ctx, bill.ehc_id), payment=bound)
    token = sandbox.token_of(bound.drawn[0])
    ctx.session.add(PaymentCode(token_digest=_token_digest(ctx, token), bill_id=bill.id, amount_fen=bill.total_fen,
                                expires_at=issued.expires_at))
    ctx.session.flush()
    return BillCode(issued.text, issued.expires_at, bill.total_fen)


def _check_payment_part(ctx: Ctx, bill: Bill, code: str, now: datetime) -> str:
    """The scanned code's payment part, checked against this bill: its token digest, unused yet."""
    template = qr.payment_part(code)
    if template is None:
        raise PaymentCodeAltered("This is a health code alone: ask the resident for the payment code of this bill.",
                                 code="payment_part_missing")
    try:
        token = channel(ctx, "sandbox").validate(template, purpose=_bill_purpose(bill), now=now)
    except PaymentTokenInvalid as exc:
        raise PaymentCodeAltered(f"The payment part does not match this bill: {exc.detail}") from None
    digest = _token_digest(ctx, token.token)
    row = repo.payment_code(ctx.session, digest)
    if row is None or row.bill_id != bill.id or row.amount_fen != bill.total_fen:
        raise PaymentCodeAltered("This payment code was not drawn for this bill and amount.")
    if row.used_at is not None:
        raise PaymentCodeReplayed("This payment code was used already; draw a new one.")
    if row.expires_at <= now:
        raise PaymentCodeExpired("This payment code has expired; draw a new one.")
    return digest


# -- settlement -------------------------------------------------------------------------------------

def _payable(bill: Bill) -> None:
    if bill.status == "paid" or bill.status == "refunded":
        raise Conflict("This bill is paid.", code="bill_paid")
    if bill.status == "settling":
        raise Conflict("This bill is being settled.", code="settlement_in_progress")


def settle_by_code(ctx: Ctx, bill_id: str, code: str, *, care_step: str = "0101051",
                   terminal_id: str | None = None, now: datetime | None = None) -> Settlement:
    """The cashier scanned the resident's two-in-one code: the payment part must be this bill's and
    unused; the health part is verified as a card use at the payment step; then the bill settles."""
    now = now or utcnow()
    bill = hospital_bill(ctx, bill_id)
    _payable(bill)
    digest = _check_payment_part(ctx, bill, code, now)
    verified = qr.verify(ctx, code, qr.Use(scene=care_step, channel=str(ctx.actor.channel), terminal_id=terminal_id),
                         now=now)
    if verified.card.ehc_id != bill.ehc_id and verified.card.person_id != bill.person_id:
        raise PaymentCodeAltered("This code is not of the bill's patient.")
    if not repo.use_code(ctx.session, digest, now):
        raise PaymentCodeReplayed("This payment code was used already; draw a new one.")
    return _begin(ctx, bill, "code", verified.use.id)


def settle_in_app(ctx: Ctx, bill_id: str) -> Settlement:
    """The resident confirms the payment in the app."""
    return _begin(ctx, my_bill(ctx, bill_id), "app", None)


def _begin(ctx: Ctx, bill: Bill, via: str, card_use_id: int | None) -> Settlement:
    bill = repo.bill(ctx.session, bill.id, lock=True) or bill
    _payable(bill)
    insured = repo.live_link(ctx.session, bill.person_id, "insurance")
    bank = repo.live_link(ctx.session, bill.person_id, "bank")
    if insured is None and bank is None:
        raise Conflict("Link medical insurance or a bank card before paying.", code="no_payment_link")
    settlement_id = new_id()
    # The try keeps its own sealed copy of the references: unlinking later changes nothing it started.
    row = Settlement(id=settlement_id, bill_id=bill.id, live_bill_id=bill.id, via=via, card_use_id=card_use_id,
                     insured_sealed=_seal_for(ctx, settlement_id, "insurance", _reference(ctx, insured)),
                     bank_sealed=_seal_for(ctx, settlement_id, "bank", _reference(ctx, bank)), actor=_actor(ctx),
                     status="insuring" if insured else "charging", cash_fen=0 if insured else bill.total_fen)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(row)
            ctx.session.flush()
    except IntegrityError:  # another cashier, the app or a retry started one a moment ago
        raise Conflict("This bill is being settled.", code="settlement_in_progress") from None
    bill.status = "settling"
    _queue(ctx, row.id, "settle_insurance" if insured else "charge_bank")
    # The outbox row is durable before any call leaves: a crash from here on is resumed, not lost.
    ctx.session.commit()
    return row


def _actor(ctx: Ctx) -> str:
    return f"{ctx.actor.kind}:{ctx.actor.id or '-'}"


def _queue(ctx: Ctx, subject_id: str, kind: str, due: datetime | None = None) -> None:
    if repo.step(ctx.session, subject_id, kind) is None:
        ctx.session.add(Step(subject_id=subject_id, kind=kind, due_at=due or utcnow()))
        ctx.session.flush()


def settlement_of(ctx: Ctx, bill: Bill) -> Settlement | None:
    """The bill's live or paid settlement, else its latest try."""
    rows = repo.settlements_of(ctx.session, bill.id)
    live = [r for r in rows if r.live_bill_id]
    return live[0] if live else (rows[-1] if rows else None)


def refunds_of(ctx: Ctx, bill: Bill) -> list[Refund]:
    return repo.refunds_of(ctx.session, bill.id)


# -- the driver -------------------------------------------------------------------------------------

GIVE_UP_AFTER = 6  # tries of an uncertain settle or charge before compensating


def _lease(ctx: Ctx) -> timedelta:
    # Long enough for one call and its timeout; short enough that a driver that died holding a step
    # (kill -9) delays it by seconds, not minutes.
    return timedelta(seconds=3 * ctx.settings.payments_timeout + 5)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(0.25 * 2 ** attempts, 60.0))


def drive(ctx: Ctx, subjects: list[str] | None = None, *, wait: float = 0.0) -> int:
    """Run due steps (of ``subjects``, or all), committing after each; with ``wait`` seconds, also wait
    for steps that fall due within that time (the request path). Returns how many steps ran."""
    deadline = time.monotonic() + wait
    ran = 0
    held: Step | None = None  # the next step of a payment, leased with the answer to the previous one
    while True:
        now = utcnow()
        if held is not None:
            step, held = held, None
        else:
            step = repo.next_due(ctx.session, now, subjects)
            if step is None:
                ctx.session.commit()
                soonest = repo.soonest_due(ctx.session, subjects) if subjects else None
                if soonest is None or time.monotonic() + max(0.0, (soonest - utcnow()).total_seconds()) > deadline:
                    return ran
                time.sleep(max(0.0, (soonest - utcnow()).total_seconds()) + 0.01)
                continue
            if not repo.lease(ctx.session, step.id, now, now + _lease(ctx)):
                ctx.session.commit()
                continue
            ctx.session.commit()  # the lease is ours before the call leaves
        ctx.session.refresh(step)
        try:
            _HANDLERS[step.kind](ctx, step)
            held = _take_next(ctx, step.subject_id)
        except Uncertain as exc:
            ctx.session.rollback()
            step = ctx.session.get(Step, step.id)
            step.last_error, step.leased_until = str(exc)[:200], None
            step.due_at = utcnow() + _backoff(step.attempts)
            if step.attempts >= GIVE_UP_AFTER and step.kind in _GIVE_UP:
                _GIVE_UP[step.kind](ctx, step)
        except Exception:
            ctx.session.rollback()
            log.exception("payment step %s failed", step.kind)
            step = ctx.session.get(Step, step.id)
            step.last_error, step.leased_until = "internal error", None
            step.due_at = utcnow() + _backoff(step.attempts)
        ctx.session.commit()
        ran += 1
        if time.monotonic() > deadline and subjects is not None and wait > 0:
            if held is not None:  # out of time: leave it to the background driver at once
                held.leased_until = None
                ctx.session.commit()
            return ran


def _take_next(ctx: Ctx, subject_id: str) -> Step | None:
    """Lease the payment's next step, if one is due now, in the same commit as the answer that queued
    it: the step is durable and ours in one disk flush instead of two."""
    now = utcnow()
    step = repo.next_due(ctx.session, now, [subject_id])
    return step if step is not None and repo.lease(ctx.session, step.id, now, now + _lease(ctx)) else None


def _done(ctx: Ctx, step: Step) -> None:
    step.status, step.done_at, step.leased_until, step.last_error = "done", utcnow(), None, None


def _settlement(ctx: Ctx, step: Step) -> tuple[Settlement, Bill]:
    row = repo.settlement(ctx.session, step.subject_id)
    return row, repo.bill(ctx.session, row.bill_id)


def _settlement_context(settlement_id: str, kind: str) -> str:
    return f"payment_settlement:{settlement_id}:{kind}"


def _seal_for(ctx: Ctx, settlement_id: str, kind: str, reference: str | None) -> str | None:
    return ctx.vault.seal(reference, _settlement_context(settlement_id, kind)) if reference else None


def _sealed_ref(ctx: Ctx, row: Settlement, bill: Bill, kind: str) -> str | None:
    sealed = row.insured_sealed if kind == "insurance" else row.bank_sealed
    return ctx.vault.open(sealed, _settlement_context(row.id, kind)) if sealed else None


def sealed_columns() -> list[resealing.SealedColumn]:
    """The domain's sealed columns with the context of each value, for re-sealing."""
    return [resealing.SealedColumn(PaymentLink.__table__.c.reference_sealed,
                                   lambda row: _seal_context(row.person_id, row.kind)),
            resealing.SealedColumn(Settlement.__table__.c.insured_sealed,
                                   lambda row: _settlement_context(row.id, "insurance")),
            resealing.SealedColumn(Settlement.__table__.c.bank_sealed, lambda row: _settlement_context(row.id, "bank"))]


def settlement_by_id(ctx: Ctx, settlement_id: str) -> Settlement:
    row = repo.settlement(ctx.session, settlement_id)
    if row is None:
        raise BillNotFound("No such settlement.")
    return row


def _settle_insurance(ctx: Ctx, step: Step) -> None:
    row, bill = _settlement(ctx, step)
    body = {"settlement_id": row.id, "insured_id": _sealed_ref(ctx, row, bill, "insurance"),
            "institution_level": bill.institution_level, "items": _items_wire(ctx, bill), "use_account": True}
    try:
        answer = _call(ctx, _insurer(ctx), "POST", "/v1/settle", body)
    except Refused as exc:
        _done(ctx, step)
        _fail(ctx, row, bill, f"insurer refused: {exc.code}")
        return
    _insurance_settled(ctx, step, row, bill, answer)


def _insurance_settled(ctx: Ctx, step: Step, row: Settlement, bill: Bill, answer: dict[str, Any]) -> None:
    _done(ctx, step)
    if row.status != "insuring":  # a repair after the settlement moved on: reconciliation decides
        return
    row.fund_fen, row.account_fen = int(answer["fund_fen"]), int(answer["account_fen"])
    row.cash_fen, row.insurer_ref = int(answer["cash_fen"]), str(answer.get("insurer_ref") or "")
    covered = row.fund_fen + row.account_fen
    if covered:
        _post(ctx, f"insurance:{row.id}", "insurance", bill.id, [("insurer", covered, 0), ("patients", 0, covered)])
    if row.cash_fen == 0:
        _paid(ctx, row, bill)
    elif row.bank_sealed is None:
        _compensate(ctx, row, "no bank card linked for the rest")
    else:
        row.status = "charging"
        _queue(ctx, row.id, "charge_bank")


def _charge_bank(ctx: Ctx, step: Step) -> None:
    row, bill = _settlement(ctx, step)
    body = {"charge_id": row.id, "token": _sealed_ref(ctx, row, bill, "bank"), "amount_fen": row.cash_fen,
            "description": f"bill {bill.bill_no}", "callback_url": _callback_url(ctx)}
    try:
        answer = _call(ctx, _bank(ctx), "POST", "/v1/charges", body)
    except Refused as exc:
        answer = {"status": "declined", "reason": exc.code}
    _charge_answered(ctx, step, row, bill, answer)


def _charge_answered(ctx: Ctx, step: Step, row: Settlement, bill: Bill, answer: dict[str, Any]) -> None:
    if step.status == "done" or row.status != "charging":
        return
    _done(ctx, step)
    if answer.get("status") == "succeeded":
        row.bank_ref = str(answer.get("bank_ref") or "")
        _post(ctx, f"bank:{row.id}", "bank", bill.id, [("bank", row.cash_fen, 0), ("patients", 0, row.cash_fen)])
        _paid(ctx, row, bill)
    else:
        _compensate(ctx, row, f"bank declined: {answer.get('reason') or 'declined'}")


def _compensate(ctx: Ctx, row: Settlement, why: str) -> None:
    """Undo the insurer's share (冲正) before the bill reopens; without one, fail at once."""
    bill = repo.bill(ctx.session, row.bill_id)
    row.failure = why[:200]
    if row.insured_sealed is None:
        _fail(ctx, row, bill, why)
        return
    row.status = "reversing"
    _queue(ctx, row.id, "reverse_insurance")


def _reverse_insurance(ctx: Ctx, step: Step) -> None:
    row, bill = _settlement(ctx, step)
    answer = _call(ctx, _insurer(ctx), "POST", "/v1/reverse", {"settlement_id": row.id, "reason": row.failure or "reversal"})
    _done(ctx, step)
    if answer.get("status") == "reversed" and repo.posted(ctx.session, f"insurance:{row.id}"):
        covered = row.fund_fen + row.account_fen
        _post(ctx, f"insurance_reversal:{row.id}", "insurance_reversal", bill.id,
              [("patients", covered, 0), ("insurer", 0, covered)])
    _fail(ctx, row, bill, row.failure or "reversed")


def _fail(ctx: Ctx, row: Settlement, bill: Bill, why: str) -> None:
    row.status, row.live_bill_id, row.finished_at = "failed", None, utcnow()
    row.failure = (row.failure or why)[:200]
    if bill.status == "settling":
        bill.status = "open"
    ctx.session.flush()


def _paid(ctx: Ctx, row: Settlement, bill: Bill) -> None:
    now = utcnow()
    row.status, row.finished_at = "paid", now
    row.receipt_no = f"R{in_china(now):%Y%m%d}{secrets.randbelow(10**10):010d}"
    bill.status, bill.paid_at = "paid", now
    ctx.session.flush()


def _give_up_insurance(ctx: Ctx, step: Step) -> None:
    # The insurer never answered: reverse, which also stops a late settle of this id at the insurer.
    step.status, step.done_at, step.last_error = "done", utcnow(), "given up: reversing"
    row, _ = _settlement(ctx, step)
    if row.status == "insuring":
        row.failure = "the insurance service did not answer"
        row.status = "reversing"
        _queue(ctx, row.id, "reverse_insurance")


def _give_up_charge(ctx: Ctx, step: Step) -> None:
    # The bank never answered: ask it to cancel the charge. Cancelled: a decline (and a reversal);
    # already charged: the charge went through. No answer: keep trying later.
    row, bill = _settlement(ctx, step)
    bank = _bank(ctx)
    try:
        _call(ctx, bank, "POST", f"/v1/charges/{row.id}/cancel")
    except Refused as exc:
        if exc.code != "already_charged":
            return
        try:
            answer = _call(ctx, bank, "GET", f"/v1/charges/{row.id}")
        except (Refused, Uncertain):
            return
        _charge_answered(ctx, step, row, bill, answer)
        return
    except Uncertain:
        return
    _charge_answered(ctx, step, row, bill, {"status": "declined", "reason": "the bank did not answer"})


def _callback_url(ctx: Ctx) -> str:
    return ctx.settings.public_url.rstrip("/") + "/api/v1/payments/callbacks/bank"


def bank_callback(ctx: Ctx, body: bytes, signature: str | None) -> None:
    """The bank's signed notice of a charge's or a refund's result: applied once, whatever the order."""
    if not configured(ctx) or not _bank(ctx).verify(body, signature):
        raise Invalid("The callback's signature does not verify with the bank's key.", code="callback_signature",
                      status=400)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    # Signed by the bank and still not a notice (a list, a number): refused, never half-read.
    if not isinstance(data, dict):
        raise Invalid("The callback is not a JSON object.", code="callback_invalid", status=400)
    refund_id, charge_id = data.get("refund_id"), data.get("charge_id")
    step = (repo.step(ctx.session, str(refund_id), "refund_bank") if refund_id else
            repo.step(ctx.session, str(charge_id), "charge_bank") if charge_id else None)
    now = utcnow()
    # Applied only by whoever holds the step: a driver calling the bank right now gets the same answer.
    if step is None or step.status != "due" or not repo.lease(ctx.session, step.id, now, now + _lease(ctx)):
        return
    ctx.session.refresh(step)
    if refund_id and data.get("status") == "succeeded":
        _refund_part_done(ctx, step, "bank")
    elif not refund_id:
        row, bill = _settlement(ctx, step)
        _charge_answered(ctx, step, row, bill, data)
    if step.status == "due":
        step.leased_until = None
    ctx.session.flush()


# -- refunds ----------------------------------------------------------------------------------------

def refund(ctx: Ctx, bill_id: str, refund_no: str, amount_fen: int, reason: str) -> tuple[Refund, bool]:
    """A full or partial refund: the insurer's share and the bank's in proportion to the settlement."""
    bill = hospital_bill(ctx, bill_id)
    existing = repo.refund_by_number(ctx.session, bill.id, refund_no)
    if existing is not None:
        if existing.amount_fen != amount_fen:
            raise Conflict("This refund number was used before for another amount.", code="refund_no_reused")
        return existing, False
    bill = repo.bill(ctx.session, bill.id, lock=True)
    if bill.status not in ("paid", "refunded"):
        raise Conflict("Only a paid bill is refunded.", code="bill_not_paid")
    if amount_fen > bill.total_fen - bill.refunded_fen:
        raise Conflict(f"At most {bill.total_fen - bill.refunded_fen} fen is left to refund.", code="refund_exceeds")
    paid = repo.live_settlement(ctx.session, bill.id)
    done = repo.refunds_of(ctx.session, bill.id)
    # In proportion, in whole fen; the last refund takes what is left of each share, so the shares
    # of all refunds add up to the settlement exactly.
    if amount_fen == bill.total_fen - bill.refunded_fen:
        fund = paid.fund_fen - sum(r.fund_fen for r in done)
        account = paid.account_fen - sum(r.account_fen for r in done)
    else:
        fund = amount_fen * paid.fund_fen // bill.total_fen
        account = amount_fen * paid.account_fen // bill.total_fen
    row = Refund(id=new_id(), bill_id=bill.id, settlement_id=paid.id, refund_no=refund_no, amount_fen=amount_fen,
                 fund_fen=fund, account_fen=account, cash_fen=amount_fen - fund - account, reason=reason,
                 actor=_actor(ctx))
    try:
        with ctx.session.begin_nested():
            ctx.session.add(row)
            ctx.session.flush()
    except IntegrityError:
        raise Conflict("This refund is being made.", code="refund_in_progress") from None
    bill.refunded_fen += amount_fen
    if row.fund_fen + row.account_fen:
        _queue(ctx, row.id, "refund_insurance")
    if row.cash_fen:
        _queue(ctx, row.id, "refund_bank")
    ctx.session.commit()
    return row, True


def _refund(ctx: Ctx, step: Step) -> tuple[Refund, Bill]:
    row = repo.refund(ctx.session, step.subject_id)
    return row, repo.bill(ctx.session, row.bill_id)


def _refund_insurance(ctx: Ctx, step: Step) -> None:
    row, _ = _refund(ctx, step)
    _call(ctx, _insurer(ctx), "POST", "/v1/refunds", {"refund_id": row.id, "settlement_id": row.settlement_id,
                                               "fund_fen": row.fund_fen, "account_fen": row.account_fen})
    _refund_part_done(ctx, step, "insurer")


def _refund_bank(ctx: Ctx, step: Step) -> None:
    row, _ = _refund(ctx, step)
    _call(ctx, _bank(ctx), "POST", "/v1/refunds", {"refund_id": row.id, "charge_id": row.settlement_id,
                                            "amount_fen": row.cash_fen, "callback_url": _callback_url(ctx)})
    _refund_part_done(ctx, step, "bank")


def _refund_part_done(ctx: Ctx, step: Step, account: str) -> None:
    row, bill = _refund(ctx, step)
    _done(ctx, step)
    amount = row.fund_fen + row.account_fen if account == "insurer" else row.cash_fen
    kind = "refund_insurance" if account == "insurer" else "refund_bank"
    _post(ctx, f"{kind}:{row.id}", kind, bill.id, [(f"hospital:{bill.institution_id}", amount, 0), (account, 0, amount)])
    if all(s.status == "done" for s in repo.steps_of(ctx.session, row.id)):
        row.status, row.finished_at = "refunded", utcnow()
        if bill.refunded_fen == bill.total_fen:
            bill.status = "refunded"
    ctx.session.flush()


_HANDLERS: dict[str, Callable[[Ctx, Step], None]] = {
    "settle_insurance": _settle_insurance, "charge_bank": _charge_bank, "reverse_insurance": _reverse_insurance,
    "refund_insurance": _refund_insurance, "refund_bank": _refund_bank}
_GIVE_UP: dict[str, Callable[[Ctx, Step], None]] = {"settle_insurance": _give_up_insurance,
                                                    "charge_bank": _give_up_charge}


def settle_and_wait(ctx: Ctx, row: Settlement, wait: float) -> Settlement:
    """Drive a settlement just started for up to ``wait`` seconds; the answer shows where it got."""
    drive(ctx, [row.id], wait=wait)
    ctx.session.refresh(row)
    return row


class Driver:
    """A daemon thread of ``ehc serve`` running due steps every ``interval`` seconds (several workers
    may each run one: a step is leased by one driver at a time)."""

    def __init__(self, db, ctx_for: Callable[[OrmSession], Ctx], interval: float = 1.0) -> None:  # noqa: ANN001
        self.db, self.ctx_for, self.interval = db, ctx_for, interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ehc-payments-driver", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.db.session() as session:
                    drive(self.ctx_for(session))
            except Exception:  # a database or network hiccup: the next round tries again
                log.warning("payments driver round failed", exc_info=True)
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.thread.join(timeout)


def start_driver(db, ctx_for: Callable[[OrmSession], Ctx], interval: float = 1.0) -> Driver:  # noqa: ANN001
    driver = Driver(db, ctx_for, interval)
    driver.thread.start()
    return driver


# -- the ledger -------------------------------------------------------------------------------------

def _post(ctx: Ctx, txn_id: str, kind: str, bill_id: str, lines: list[tuple[str, int, int]]) -> None:
    """Post one balanced transaction, once: a second posting of ``txn_id`` is a no-op."""
    if sum(d for _, d, _ in lines) != sum(c for _, _, c in lines):
        raise ValueError(f"unbalanced posting {txn_id}")
    if repo.posted(ctx.session, txn_id):
        return
    now = utcnow()
    for line, (account, debit, credit) in enumerate(lines, start=1):
        ctx.session.add(LedgerEntry(txn_id=txn_id, line=line, kind=kind, account=account, bill_id=bill_id,
                                    debit_fen=debit, credit_fen=credit, at=now))
    ctx.session.flush()


@dataclass(frozen=True)
class LedgerCheck:
    balanced: bool
    transactions: int
    problems: list[str]
    balances: dict[str, int]


def check_ledger(ctx: Ctx) -> LedgerCheck:
    """Every transaction balances, and what each bill's patients still owe agrees with its status:
    the total while open or settling a share not yet taken, nothing once paid."""
    problems = [f"transaction {t} debits {d} ≠ credits {c}" for t, d, c in repo.unbalanced_transactions(ctx.session)]
    owed = repo.patients_balance_by_bill(ctx.session)
    for bill_id, (status, total) in repo.bill_totals(ctx.session).items():
        left = owed.get(bill_id, 0)
        if status in ("paid", "refunded") and left != 0:
            problems.append(f"bill {bill_id} is {status} but its patients still owe {left} fen")
        if status == "open" and left != total:
            problems.append(f"bill {bill_id} is open but its patients owe {left} fen of {total}")
    balances = repo.account_balances(ctx.session)
    return LedgerCheck(not problems, repo.transaction_count(ctx.session), problems, balances)


# -- reconciliation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One money movement, as one side records it: who, which id, how much."""

    source: str  # insurer | bank
    kind: str  # settle | reverse | refund | charge
    platform_id: str
    amount_fen: int


@contextmanager
def _bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while a day's million entries or findings are built: with it
    on, every so often it walks everything alive, which cost about as much again as the building
    (bench/bench_payments.py). These objects hold no cycles; the collector's state is restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_insurer_statement(text: str) -> list[Entry]:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    if not header:
        return []
    record, platform_id = header.index("record"), header.index("platform_id")
    fund, account = header.index("fund_fen"), header.index("account_fen")
    with _bulk():
        return [Entry("insurer", row[record].strip().lower(), row[platform_id].strip(),
                      int(row[fund]) + int(row[account])) for row in rows if row]


def parse_bank_statement(text: str) -> list[Entry]:
    entries = []
    with _bulk():
        for line in text.splitlines():
            parts = line.strip().split("|")
            if parts[0] != "D" or len(parts) < 6:
                continue
            kind = "charge" if parts[1] == "CHG" else "refund"
            if parts[5] != "succeeded":
                continue
            entries.append(Entry("bank", kind, parts[2], int(parts[4])))
    return entries


_LEDGER_KINDS = {"insurance": ("insurer", "settle"), "insurance_reversal": ("insurer", "reverse"),
                 "refund_insurance": ("insurer", "refund"), "bank": ("bank", "charge"), "refund_bank": ("bank", "refund")}


def ledger_entries(ctx: Ctx, day: date) -> list[Entry]:
    """The platform's side of ``day`` (China time): every posting that moved money at a service."""
    start = datetime.combine(day, datetime.min.time(), CHINA)
    kinds = _LEDGER_KINDS
    with _bulk():
        rows = repo.ledger_between(ctx.session, tuple(kinds), start, start + timedelta(days=1))
        return [Entry(*kinds[kind], txn_id.split(":", 1)[1], debit + credit) for kind, txn_id, debit, credit in rows]


@dataclass(frozen=True)
class Finding:
    source: str
    platform_id: str
    finding: str  # matched | missing | extra | mismatch | repaired
    ours_fen: int | None
    theirs_fen: int | None
    detail: str


def match(ours: list[Entry], theirs: list[Entry]) -> list[Finding]:
    """Pure matching of two sides by (source, kind, id): matched, mismatch (amounts differ), missing
    (ours only), extra (theirs only). Linear in the number of entries."""
    with _bulk():
        mine = {(e.source, e.kind, e.platform_id): e.amount_fen for e in ours}
        findings = []
        for entry in theirs:
            key = (entry.source, entry.kind, entry.platform_id)
            amount = mine.pop(key, None)
            if amount is None:
                findings.append(Finding(entry.source, entry.platform_id, "extra", None, entry.amount_fen, entry.kind))
            elif amount != entry.amount_fen:
                findings.append(Finding(entry.source, entry.platform_id, "mismatch", amount, entry.amount_fen,
                                        entry.kind))
            else:
                findings.append(Finding(entry.source, entry.platform_id, "matched", amount, amount, entry.kind))
        findings += [Finding(s, pid, "missing", amount, None, kind) for (s, kind, pid), amount in mine.items()]
    return findings


@dataclass(frozen=True)
class Reconciliation:
    day: date
    findings: list[Finding]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.finding] = out.get(f.finding, 0) + 1
        return out

    @property
    def clean(self) -> bool:
        return all(f.finding in ("matched", "repaired") for f in self.findings)


def reconcile(ctx: Ctx, day: date) -> Reconciliation:
    """Match both services' statements of ``day`` against the ledger, repair what a statement proves
    (a call that timed out but went through: its step is resumed with the service's answer), then
    match again and store the findings (a rerun replaces them)."""
    try:
        theirs = parse_insurer_statement(_insurer(ctx).text(f"/v1/statements/{day.isoformat()}"))
        theirs += parse_bank_statement(_bank(ctx).text(f"/v1/statements/{day.isoformat()}"))
    except Uncertain as exc:
        raise PaymentsUnavailable(f"A statement could not be fetched: {exc}", code="statement_unavailable") from None
    repaired = []
    for finding in match(ledger_entries(ctx, day), theirs):
        if finding.finding == "extra" and _repair(ctx, finding):
            repaired.append(finding)
    ctx.session.flush()
    findings = match(ledger_entries(ctx, day), theirs)
    fixed = {(f.source, f.platform_id) for f in repaired}
    findings = [Finding(f.source, f.platform_id, "repaired", f.ours_fen, f.theirs_fen, f.detail)
                if (f.source, f.platform_id) in fixed and f.finding == "matched" else f for f in findings]
    repo.forget_findings(ctx.session, day)
    for f in findings:
        if f.finding != "matched":
            ctx.session.add(ReconciliationItem(day=day, source=f.source, platform_id=f.platform_id, finding=f.finding,
                                               ours_fen=f.ours_fen, theirs_fen=f.theirs_fen, detail=f.detail))
    ctx.session.flush()
    return Reconciliation(day, findings)


def _repair(ctx: Ctx, finding: Finding) -> bool:
    """A movement the service made that the ledger lacks: the platform's call timed out but went
    through. While its step still waits, the service's record is its answer (the step goes on)."""
    if finding.source == "insurer" and finding.detail == "settle":
        step = repo.step(ctx.session, finding.platform_id, "settle_insurance")
        if step is not None and step.status == "due":
            try:
                answer = _call(ctx, _insurer(ctx), "GET", f"/v1/settlements/{finding.platform_id}")
            except (Refused, Uncertain):
                return False
            row, bill = _settlement(ctx, step)
            _insurance_settled(ctx, step, row, bill, answer)
            return True
    if finding.source == "bank" and finding.detail == "charge":
        step = repo.step(ctx.session, finding.platform_id, "charge_bank")
        if step is not None and step.status == "due":
            row, bill = _settlement(ctx, step)
            _charge_answered(ctx, step, row, bill, {"status": "succeeded", "bank_ref": "statement"})
            return True
    return False


def findings_of(ctx: Ctx, day: date) -> list[ReconciliationItem]:
    return repo.findings(ctx.session, day)


def findings_csv(findings: list[Finding] | list[ReconciliationItem]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["source", "platform_id", "finding", "ours_fen", "theirs_fen", "detail"])
    for f in findings:
        writer.writerow([f.source, f.platform_id, f.finding, f.ours_fen, f.theirs_fen, f.detail])
    return out.getvalue()


def statistics_events(session: OrmSession, after_id: int, limit: int) -> list[dict]:
    """The payments' source for the statistics pipeline (``wiring`` registers it): one event per
    ledger transaction, its kind the posting's (``bill``, ``insurance``, ``bank``, ``insurance_reversal``,
    ``refund_insurance``, ``refund_bank``), at the bill's hospital; counts only, no amounts."""
    return [{"id": entry_id, "at": at, "kind": kind, "institution_id": institution_id, "person_id": person_id}
            for entry_id, at, kind, institution_id, person_id in repo.ledger_events_after(session, after_id, limit)]


def pending(ctx: Ctx) -> list[Step]:
    """Steps still waiting (the finance page shows them: a service that keeps failing shows here)."""
    return repo.pending_steps(ctx.session)

