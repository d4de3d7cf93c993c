"""What the payments domain stores (docs/payments.md).

- ``payment_links``: a resident's medical insurance and bank card, as the insurer's insured id and the
  bank's token, both sealed; only the masked card number and the scheme are in clear.
- ``payment_bills`` and ``payment_bill_items``: what a hospital asks to be paid, in fen.
- ``payment_settlements``: one try at paying a bill (insurance share, then the bank the rest). At most
  one try per bill is live: ``live_bill_id`` is the bill's id while the try runs or once it paid, and
  empty once it failed, under a unique constraint, so two cashiers, the app and a retry settle once.
- ``payment_steps``: the outbox. Every call to the insurer or the bank is a row first, committed
  before the call leaves; a driver takes due rows (a lease keeps two drivers off one row), calls, and
  records the answer. A crash at any point leaves a due row that the next driver resumes.
- ``payment_refunds``: a full or partial refund of a paid bill.
- ``payment_codes``: the payment parts of two-in-one codes drawn for a bill, by the token's digest:
  one use each, bound to the bill and its amount.
- ``payment_ledger``: double-entry and append-only. Each posting has a deterministic ``txn_id`` so
  posting twice stores once; every transaction's debits equal its credits.
- ``payment_reconciliation``: what a day's reconciliation found against each service's statement.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class PaymentLink(Base):
    __tablename__ = "payment_links"
    __table_args__ = (UniqueConstraint("live_key", name="uq_payment_links_live_key"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # insurance | bank
    # "<person_id>:<kind>" while the link is live, empty once removed: one live link of a kind per person.
    live_key: Mapped[str | None] = mapped_column(String(64))
    reference_sealed: Mapped[str] = mapped_column(Text)  # the insured id or the bank token
    masked: Mapped[str] = mapped_column(String(32))  # "INS********1234", "6222 **** **** 1234"
    scheme: Mapped[str | None] = mapped_column(String(16))  # employee | resident (insurance)
    linked_by: Mapped[str] = mapped_column(String(64))  # the account that linked it (a guardian for a member)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Bill(Base):
    __tablename__ = "payment_bills"
    __table_args__ = (UniqueConstraint("institution_id", "bill_no", name="uq_payment_bills_institution_bill_no"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(24), index=True)
    bill_no: Mapped[str] = mapped_column(String(64))  # the hospital's own number: a resent bill is stored once
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    ehc_id: Mapped[str] = mapped_column(String(64))
    institution_level: Mapped[int] = mapped_column(Integer)  # 1 primary, 2 secondary, 3 tertiary
    total_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | settling | paid | refunded
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    digest: Mapped[str] = mapped_column(String(64))  # of the items: the same bill_no with other items is refused
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class BillItem(Base):
    __tablename__ = "payment_bill_items"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    bill_id: Mapped[str] = mapped_column(ForeignKey("payment_bills.id"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(1))  # A 甲 | B 乙 | C 丙
    self_share_permille: Mapped[int] = mapped_column(Integer, default=0)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class Settlement(Base):
    __tablename__ = "payment_settlements"
    __table_args__ = (UniqueConstraint("live_bill_id", name="uq_payment_settlements_live_bill"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    bill_id: Mapped[str] = mapped_column(ForeignKey("payment_bills.id"), index=True)
    live_bill_id: Mapped[str | None] = mapped_column(String(24))
    # insuring → charging → paid; or → reversing → failed (the bill is open again, nothing charged)
    status: Mapped[str] = mapped_column(String(16), default="insuring")
    via: Mapped[str] = mapped_column(String(8))  # code (scanned at the cashier) | app (confirmed by the resident)
    card_use_id: Mapped[int | None] = mapped_column(BigInteger)
    insured_sealed: Mapped[str | None] = mapped_column(Text)  # the insured id this try settles with
    bank_sealed: Mapped[str | None] = mapped_column(Text)  # the bank token this try charges
    fund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    account_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    cash_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    insurer_ref: Mapped[str | None] = mapped_column(String(64))
    bank_ref: Mapped[str | None] = mapped_column(String(64))
    receipt_no: Mapped[str | None] = mapped_column(String(32), unique=True)
    failure: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Step(Base):
    __tablename__ = "payment_steps"
    __table_args__ = (UniqueConstraint("subject_id", "kind", name="uq_payment_steps_subject_kind"),
                      Index("ix_payment_steps_due", "status", "due_at"))

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(String(24))  # a settlement's or a refund's id
    # settle_insurance | charge_bank | reverse_insurance | refund_insurance | refund_bank
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(8), default="due")  # due | done
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Refund(Base):
    __tablename__ = "payment_refunds"
    __table_args__ = (UniqueConstraint("bill_id", "refund_no", name="uq_payment_refunds_bill_refund_no"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    bill_id: Mapped[str] = mapped_column(ForeignKey("payment_bills.id"), index=True)
    settlement_id: Mapped[str] = mapped_column(String(24))
    refund_no: Mapped[str] = mapped_column(String(64))  # the hospital's number: a resent refund is made once
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    fund_fen: Mapped[int] = mapped_column(BigInteger)
    account_fen: Mapped[int] = mapped_column(BigInteger)
    cash_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="refunding")  # refunding | refunded
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PaymentCode(Base):
    __tablename__ = "payment_codes"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    bill_id: Mapped[str] = mapped_column(String(24), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LedgerEntry(Base):
    __tablename__ = "payment_ledger"
    __table_args__ = (UniqueConstraint("txn_id", "line", name="uq_payment_ledger_txn_line"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    txn_id: Mapped[str] = mapped_column(String(64), index=True)  # "<kind>:<subject id>"
    line: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))  # bill | insurance | insurance_reversal | bank | refund
    account: Mapped[str] = mapped_column(String(64))  # "patients", "insurer", "bank", "hospital:<id>"
    bill_id: Mapped[str] = mapped_column(String(24), index=True)
    debit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ReconciliationItem(Base):
    __tablename__ = "payment_reconciliation"  # a rerun of a day replaces the day's findings

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    source: Mapped[str] = mapped_column(String(16))  # insurer | bank
    platform_id: Mapped[str] = mapped_column(String(64))  # settlement, refund or charge id
    # matched | repaired | missing (ours, not theirs) | extra (theirs, not ours) | mismatch (amounts)
    finding: Mapped[str] = mapped_column(String(16))
    ours_fen: Mapped[int | None] = mapped_column(BigInteger)
    theirs_fen: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
