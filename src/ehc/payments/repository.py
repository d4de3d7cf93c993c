"""Queries of the payments domain."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .models import (
    Bill,
    BillItem,
    LedgerEntry,
    PaymentCode,
    PaymentLink,
    ReconciliationItem,
    Refund,
    Settlement,
    Step,
)


def live_link(session: Session, person_id: str, kind: str) -> PaymentLink | None:
    return session.scalars(select(PaymentLink).where(PaymentLink.live_key == f"{person_id}:{kind}")).first()


def live_links(session: Session, person_id: str) -> list[PaymentLink]:
    return list(session.scalars(select(PaymentLink).where(PaymentLink.person_id == person_id,
                                                          PaymentLink.live_key.is_not(None))
                                .order_by(PaymentLink.kind)))


def bill(session: Session, bill_id: str, *, lock: bool = False) -> Bill | None:
    query = select(Bill).where(Bill.id == bill_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def bill_by_number(session: Session, institution_id: str, bill_no: str) -> Bill | None:
    return session.scalars(select(Bill).where(Bill.institution_id == institution_id, Bill.bill_no == bill_no)).first()


def items(session: Session, bill_id: str) -> list[BillItem]:
    return list(session.scalars(select(BillItem).where(BillItem.bill_id == bill_id).order_by(BillItem.line)))


def bills_of(session: Session, person_ids: Iterable[str], limit: int = 100) -> list[Bill]:
    return list(session.scalars(select(Bill).where(Bill.person_id.in_(list(person_ids)))
                                .order_by(Bill.created_at.desc()).limit(limit)))


def bills_at(session: Session, institution_id: str, status: str | None, limit: int = 100) -> list[Bill]:
    query = select(Bill).where(Bill.institution_id == institution_id)
    if status:
        query = query.where(Bill.status == status)
    return list(session.scalars(query.order_by(Bill.created_at.desc()).limit(limit)))


def settlement(session: Session, settlement_id: str) -> Settlement | None:
    return session.get(Settlement, settlement_id)


def settlements_of(session: Session, bill_id: str) -> list[Settlement]:
    return list(session.scalars(select(Settlement).where(Settlement.bill_id == bill_id)
                                .order_by(Settlement.created_at)))


def live_settlement(session: Session, bill_id: str) -> Settlement | None:
    return session.scalars(select(Settlement).where(Settlement.live_bill_id == bill_id)).first()


def refund(session: Session, refund_id: str) -> Refund | None:
    return session.get(Refund, refund_id)


def refund_by_number(session: Session, bill_id: str, refund_no: str) -> Refund | None:
    return session.scalars(select(Refund).where(Refund.bill_id == bill_id, Refund.refund_no == refund_no)).first()


def refunds_of(session: Session, bill_id: str) -> list[Refund]:
    return list(session.scalars(select(Refund).where(Refund.bill_id == bill_id).order_by(Refund.created_at)))


# -- the outbox -------------------------------------------------------------------------------------

def steps_of(session: Session, subject_id: str) -> list[Step]:
    return list(session.scalars(select(Step).where(Step.subject_id == subject_id).order_by(Step.id)))


def step(session: Session, subject_id: str, kind: str) -> Step | None:
    return session.scalars(select(Step).where(Step.subject_id == subject_id, Step.kind == kind)).first()


def next_due(session: Session, now: datetime, subject_ids: list[str] | None) -> Step | None:
    query = select(Step).where(Step.status == "due", Step.due_at <= now,
                               (Step.leased_until.is_(None)) | (Step.leased_until < now))
    if subject_ids is not None:
        query = query.where(Step.subject_id.in_(subject_ids))
    return session.scalars(query.order_by(Step.due_at, Step.id).limit(1)).first()


def soonest_due(session: Session, subject_ids: list[str]) -> datetime | None:
    return session.scalar(select(func.min(Step.due_at)).where(Step.status == "due", Step.subject_id.in_(subject_ids)))


def lease(session: Session, step_id: int, now: datetime, until: datetime) -> bool:
    """Take a due step for one call (True), unless another driver holds it: a conditional update, so
    two drivers racing for one step leave exactly one holding it."""
    taken = session.execute(update(Step).where(Step.id == step_id, Step.status == "due",
                                               (Step.leased_until.is_(None)) | (Step.leased_until < now))
                            .values(leased_until=until, attempts=Step.attempts + 1))
    return taken.rowcount == 1


def pending_steps(session: Session) -> list[Step]:
    return list(session.scalars(select(Step).where(Step.status == "due").order_by(Step.due_at)))


# -- codes ------------------------------------------------------------------------------------------

def payment_code(session: Session, digest: str) -> PaymentCode | None:
    return session.get(PaymentCode, digest)


def use_code(session: Session, digest: str, now: datetime) -> bool:
    """Mark a payment code used (True) unless it was used already: one use, even under races."""
    used = session.execute(update(PaymentCode).where(PaymentCode.token_digest == digest,
                                                     PaymentCode.used_at.is_(None)).values(used_at=now))
    return used.rowcount == 1


# -- the ledger -------------------------------------------------------------------------------------

def posted(session: Session, txn_id: str) -> bool:
    return session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.txn_id == txn_id)) > 0


def ledger_of(session: Session, bill_id: str) -> list[LedgerEntry]:
    return list(session.scalars(select(LedgerEntry).where(LedgerEntry.bill_id == bill_id).order_by(LedgerEntry.id)))


def unbalanced_transactions(session: Session) -> list[tuple[str, int, int]]:
    rows = session.execute(select(LedgerEntry.txn_id, func.sum(LedgerEntry.debit_fen), func.sum(LedgerEntry.credit_fen))
                           .group_by(LedgerEntry.txn_id)
                           .having(func.sum(LedgerEntry.debit_fen) != func.sum(LedgerEntry.credit_fen)))
    return [(t, int(d), int(c)) for t, d, c in rows]


def transaction_count(session: Session) -> int:
    return session.scalar(select(func.count(func.distinct(LedgerEntry.txn_id)))) or 0


def account_balances(session: Session) -> dict[str, int]:
    rows = session.execute(select(LedgerEntry.account, func.sum(LedgerEntry.debit_fen - LedgerEntry.credit_fen))
                           .group_by(LedgerEntry.account))
    return {account: int(balance) for account, balance in rows}


def patients_balance_by_bill(session: Session) -> dict[str, int]:
    rows = session.execute(select(LedgerEntry.bill_id, func.sum(LedgerEntry.debit_fen - LedgerEntry.credit_fen))
                           .where(LedgerEntry.account == "patients").group_by(LedgerEntry.bill_id))
    return {bill_id: int(balance) for bill_id, balance in rows}


def bill_totals(session: Session) -> dict[str, tuple[str, int]]:
    return {b: (s, int(t)) for b, s, t in session.execute(select(Bill.id, Bill.status, Bill.total_fen))}


def ledger_between(session: Session, kinds: tuple[str, ...], start: datetime,
                   end: datetime) -> list[tuple[str, str, int, int]]:
    """(kind, txn_id, debit_fen, credit_fen) of the first line of each transaction of ``kinds`` in
    [start, end): plain tuples, not entities, since a day's reconciliation reads a million of them."""
    rows = session.execute(select(LedgerEntry.kind, LedgerEntry.txn_id, LedgerEntry.debit_fen, LedgerEntry.credit_fen)
                           .where(LedgerEntry.kind.in_(kinds), LedgerEntry.at >= start, LedgerEntry.at < end,
                                  LedgerEntry.line == 1))
    return list(rows.tuples())


def ledger_events_after(session: Session, after_id: int, limit: int) -> list[tuple]:
    """(first line of a posting, the bill's institution, its person) after ``after_id``, in id order:
    one row per ledger transaction (the statistics source)."""
    return [tuple(row) for row in session.execute(
        select(LedgerEntry.id, LedgerEntry.at, LedgerEntry.kind, Bill.institution_id, Bill.person_id)
        .join(Bill, Bill.id == LedgerEntry.bill_id)
        .where(LedgerEntry.id > after_id, LedgerEntry.line == 1).order_by(LedgerEntry.id).limit(limit))]


# -- reconciliation ---------------------------------------------------------------------------------

def findings(session: Session, day, source: str | None = None) -> list[ReconciliationItem]:  # noqa: ANN001
    query = select(ReconciliationItem).where(ReconciliationItem.day == day)
    if source:
        query = query.where(ReconciliationItem.source == source)
    return list(session.scalars(query.order_by(ReconciliationItem.source, ReconciliationItem.finding,
                                               ReconciliationItem.platform_id)))


def forget_findings(session: Session, day) -> None:  # noqa: ANN001
    for row in findings(session, day):
        session.delete(row)
    session.flush()
