"""Payment demo data, when the insurance service and the bank answer (``make run`` starts both).

A few demo residents are registered at the insurer and given a bank account, through the sandboxes'
own admin routes (``/admin/persons``, ``/admin/accounts``: plain HTTP, as a tester would; the demo is a
door, and the platform knows the services only over HTTP); then each links both through the payments
service, as in the app, and the tour hospital sends them a few open bills (``create_bill`` as its
hospital system would). Signed in as one of them, ``/api/v1/me/bills`` lists the bills, ready to pay.

Without ``EHC_INSURANCE_URL`` and ``EHC_BANK_URL``, or when a service does not answer, nothing is
added and the reason is one line of the demo's summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from ..kit.codes import Channel
from ..kit.context import Actor
from ..kit.errors import Problem
from ..payments import service as payments
from ..platform import Platform

# Bills of the tour hospital (a tertiary one): a consultation, tests, medicines; fen, with the
# insurance class of each item (甲 A, 乙 B with its self-paid share, 丙 C).
BILLS = [
    [{"code": "A001", "name": "普通门诊诊查费", "category": "A", "quantity": 1, "unit_price_fen": 2_500},
     {"code": "B101", "name": "血常规", "category": "B", "self_share_permille": 100, "quantity": 1,
      "unit_price_fen": 3_000},
     {"code": "A210", "name": "阿莫西林胶囊", "category": "A", "quantity": 2, "unit_price_fen": 1_850}],
    [{"code": "B301", "name": "胸部 CT 平扫", "category": "B", "self_share_permille": 100, "quantity": 1,
      "unit_price_fen": 28_000},
     {"code": "C020", "name": "一次性医用口罩", "category": "C", "quantity": 2, "unit_price_fen": 150}],
    [{"code": "A002", "name": "专家门诊诊查费", "category": "A", "quantity": 1, "unit_price_fen": 5_000},
     {"code": "B220", "name": "阿托伐他汀钙片", "category": "B", "self_share_permille": 50, "quantity": 3,
      "unit_price_fen": 4_620}],
]


@dataclass(frozen=True)
class Payer:
    """A demo resident to pay with: who, the phone to sign in with, what they owe."""

    name: str
    phone: str
    ehc_id: str
    scheme: str
    bank_masked: str
    bills: int
    owed_fen: int


@dataclass(frozen=True)
class Candidate:
    name: str
    document_type: str
    document_number: str
    phone: str
    ehc_id: str
    person_id: str


def services_answer(insurance_url: str, bank_url: str, wait: float = 0.0) -> str | None:
    """None when both services answer their ``/key`` (within ``wait`` seconds: ``make run`` starts
    them a moment before the demo); else why not, in a few words."""
    if not insurance_url or not bank_url:
        return "EHC_INSURANCE_URL and EHC_BANK_URL are not set"
    deadline = time.monotonic() + wait
    for what, url in (("insurance service", insurance_url), ("bank", bank_url)):
        while True:
            try:
                httpx.get(url.rstrip("/") + "/key", timeout=3).raise_for_status()
                break
            except httpx.HTTPError as exc:
                if time.monotonic() >= deadline:
                    return f"the {what} at {url} does not answer ({type(exc).__name__})"
                time.sleep(0.25)
    return None


def add_payments(platform: Platform, candidates: list[Candidate], hospital_id: str,
                 wait: float = 0.0) -> tuple[list[Payer], str | None]:
    """Register ``candidates`` at both services, link them, bill them: (the payers, and why not all, if
    not all)."""
    settings = platform.settings
    why = services_answer(settings.insurance_url, settings.bank_url, wait)
    if why:
        return [], why
    insurer, bank = settings.insurance_url.rstrip("/"), settings.bank_url.rstrip("/")
    his = Actor(kind="machine", channel=Channel.HOSPITAL_SYSTEM, id="demo-his", institution_id=hospital_id)
    payers = []
    try:
        with httpx.Client(timeout=10) as http:
            for n, who in enumerate(candidates):
                scheme = "employee" if n % 3 != 2 else "resident"
                http.post(f"{insurer}/admin/persons", json={
                    "document_type": who.document_type, "document_number": who.document_number, "name": who.name,
                    "scheme": scheme, "account_balance_fen": 8_000 if scheme == "employee" else 0,
                    "ytd_deductible_met_fen": 80_000 if n % 2 == 0 else 0}).raise_for_status()
                account_no = f"622202{who.phone[-10:]}"
                http.post(f"{bank}/admin/accounts", json={"account_no": account_no, "name": who.name,
                                                          "balance_fen": 500_000}).raise_for_status()
                with platform.db.session() as session:
                    me = platform.ctx(session, Actor(kind="resident", channel=Channel.WEBSITE, id=who.person_id,
                                                     roles=frozenset({"resident"})))
                    payments.link_insurance(me)
                    link = payments.link_bank(me, account_no)
                    masked = link.masked
                owed = 0
                with platform.db.session() as session:
                    hospital = platform.ctx(session, his)
                    for b, items in enumerate(BILLS[: 2 + n % 2]):
                        bill, _ = payments.create_bill(hospital, f"DEMO-{n + 1:02d}-{b + 1}", who.ehc_id, items)
                        owed += bill.total_fen
                payers.append(Payer(who.name, who.phone, who.ehc_id, scheme, masked, 2 + n % 2, owed))
    except (httpx.HTTPError, Problem) as exc:
        detail = exc.detail if isinstance(exc, Problem) else type(exc).__name__
        return payers, f"stopped after {len(payers)} resident(s): {detail}"
    return payers, None
