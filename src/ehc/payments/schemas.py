"""The payments domain on the wire, and the problems it answers with. Money is integer fen everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..kit.errors import Conflict, Invalid, NotFound, Problem

MEDICAL_PAYMENT = "medical-payment"  # what the token may pay for: medical bills at a cashier


class PaymentChannelUnknown(Invalid):
    code = "payment_channel_unknown"
    title = "Unknown payment channel"


class PaymentTokenInvalid(Invalid):
    code = "payment_token_invalid"
    title = "Payment token refused"


class PaymentCodeAltered(Invalid):
    """The payment part does not match this bill and its amount: altered, or drawn for another bill."""

    code = "payment_code_altered"
    title = "Payment code does not match the bill"


class PaymentCodeReplayed(Conflict):
    code = "payment_code_replayed"
    title = "Payment code already used"


class PaymentCodeExpired(Invalid):
    code = "payment_code_expired"
    title = "Payment code expired"


class PaymentsUnavailable(Problem):
    status = 503
    code = "payments_unavailable"
    title = "Payments are not set up here"


class BillNotFound(NotFound):
    code = "bill_not_found"
    title = "No such bill"


@dataclass(frozen=True)
class PaymentToken:
    """What a channel learned from a valid template: enough for the cashier to ask for the money."""

    channel: str
    token: str  # the one-time token (a 16-digit PAN-shaped number)
    expiry: str  # YYMM, as track 2 carries it
    purpose: str


@dataclass(frozen=True)
class Split:
    """How a bill divides: the pooling fund, the personal account, and what the bank is charged."""

    total_fen: int
    fund_fen: int
    account_fen: int
    cash_fen: int
    deductible_fen: int = 0
    insured: bool = False


# -- wire -------------------------------------------------------------------------------------------

_Fen = Field(ge=0, le=10**12)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, description="the item's code in the insurance catalogue")
    name: str = Field(min_length=1, max_length=100)
    category: Literal["A", "B", "C"] = Field(description="甲 A covered, 乙 B covered after a self-paid share, 丙 C self-pay")
    self_share_permille: int = Field(0, ge=0, le=1000, description="B only: the share the patient pays first, in ‰")
    quantity: int = Field(ge=1, le=100_000)
    unit_price_fen: int = Field(ge=0, le=10**10)


class BillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bill_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                         description="the hospital's own bill number; sending it again returns the same bill")
    ehc_id: str = Field(min_length=64, max_length=64, pattern=r"^[0-9A-F]{64}$", description="the patient's card")
    items: list[ItemIn] = Field(min_length=1, max_length=500)


class ItemOut(BaseModel):
    line: int
    code: str
    name: str
    category: str
    self_share_permille: int
    quantity: int
    unit_price_fen: int
    amount_fen: int


class SplitOut(BaseModel):
    total_fen: int
    fund_fen: int = Field(description="paid by the pooling fund (统筹基金)")
    account_fen: int = Field(description="paid from the personal account (个人账户)")
    cash_fen: int = Field(description="charged to the bank card")
    deductible_fen: int
    insured: bool

    @classmethod
    def of(cls, split: Split) -> "SplitOut":
        return cls(total_fen=split.total_fen, fund_fen=split.fund_fen, account_fen=split.account_fen,
                   cash_fen=split.cash_fen, deductible_fen=split.deductible_fen, insured=split.insured)


class SettlementOut(BaseModel):
    id: str
    status: str = Field(description="insuring | charging | paid | reversing | failed")
    via: str
    fund_fen: int
    account_fen: int
    cash_fen: int
    receipt_no: str | None
    failure: str | None
    created_at: datetime
    finished_at: datetime | None


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refund_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    amount_fen: int = Field(gt=0, le=10**12)
    reason: str = Field(min_length=1, max_length=200)


class RefundOut(BaseModel):
    id: str
    refund_no: str
    status: str = Field(description="refunding | refunded")
    amount_fen: int
    fund_fen: int
    account_fen: int
    cash_fen: int
    reason: str
    created_at: datetime
    finished_at: datetime | None


class BillOut(BaseModel):
    id: str
    bill_no: str
    institution_id: str
    institution_name: str | None = None
    status: str = Field(description="open | settling | paid | refunded")
    total_fen: int
    refunded_fen: int
    institution_level: int
    created_at: datetime
    paid_at: datetime | None
    items: list[ItemOut] = []
    settlement: SettlementOut | None = None
    refunds: list[RefundOut] = []


class SettleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=1200, description="the two-in-one code the cashier scanned")
    care_step: Literal["0101051", "0101052", "0101053"] = "0101051"
    terminal_id: str | None = Field(None, max_length=24)


class LinkBankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_no: str = Field(min_length=12, max_length=19, pattern=r"^[0-9]+$")
    member: str | None = Field(None, max_length=64, description="a family member's EHC ID I guard")


class LinkInsuranceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: str | None = Field(None, max_length=64, description="a family member's EHC ID I guard")


class LinkOut(BaseModel):
    kind: str
    masked: str
    scheme: str | None
    created_at: datetime


class BillCodeOut(BaseModel):
    code: str = Field(description="a two-in-one EHCM1: code whose payment part pays this bill, once")
    expires_at: datetime
    amount_fen: int


class FindingOut(BaseModel):
    source: str
    platform_id: str
    finding: str
    ours_fen: int | None
    theirs_fen: int | None
    detail: str


class ReconciliationOut(BaseModel):
    day: str
    counts: dict[str, int]
    findings: list[FindingOut]


class LedgerCheckOut(BaseModel):
    balanced: bool
    transactions: int
    problems: list[str]
    balances: dict[str, int]
