"""The payment world of the tests and benchmarks: the insurance service and the bank started as real
processes (``ehc sandbox insurance|bank``), and a patient known to both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sandbox_services

from ehc.config import Settings


class Service(sandbox_services.Service):
    """A sandbox as the payments tests drive it (``sandbox_services.Service``, whose client checks
    every signed answer), with the admin conveniences they use."""

    def __init__(self, kind: str, data: Path, *, callback_url: str | None = None) -> None:
        super().__init__(kind, data, *(["--callback-url", callback_url] if callback_url else []))

    def started(self) -> "Service":
        self.start()
        return self

    def kill9(self) -> None:
        self.kill()

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        answer = self.client.request(method, path, json=body)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else {}

    def clear_faults(self) -> None:
        self.client.delete("/admin/faults")


@contextmanager
def services(root: Path, callback_url: str | None = None) -> Iterator[tuple[Service, Service]]:
    insurer = Service("insurance", root / "insurance").started()
    bank = Service("bank", root / "bank", callback_url=callback_url).started()
    try:
        yield insurer, bank
    finally:
        insurer.stop()
        bank.stop()


def platform_settings(database_url: str, keys_dir: Path, data_dir: Path, insurer: Service, bank: Service,
                      **extra) -> Settings:  # noqa: ANN003
    """A test platform's settings pointed at the two services (calls time out after a second)."""
    return Settings(data_dir=data_dir, database_url=database_url, keys_dir=keys_dir, insurance_url=insurer.url,
                    bank_url=bank.url, payments_timeout=1.0, **{"public_url": "http://127.0.0.1:9", **extra})


def insure(insurer: Service, person: dict, *, scheme: str = "employee", balance: int = 50_000,
           deductible_met: int = 0, fund_paid: int = 0) -> str:
    """Register (or reset) the person at the insurer: their insured id."""
    return insurer.admin("POST", "/admin/persons", {
        "document_type": person["document"]["type"], "document_number": person["document"]["number"],
        "name": person["name"], "scheme": scheme, "account_balance_fen": balance,
        "ytd_fund_paid_fen": fund_paid, "ytd_deductible_met_fen": deductible_met})["insured_id"]


def open_account(bank: Service, account_no: str, name: str, balance: int) -> None:
    bank.admin("POST", "/admin/accounts", {"account_no": account_no, "name": name, "balance_fen": balance})


def balance(bank: Service, account_no: str) -> int:
    return bank.admin("GET", f"/admin/accounts/{account_no}")["balance_fen"]


def insured(insurer: Service, insured_id: str) -> dict:
    return insurer.admin("GET", f"/v1/insured/{insured_id}")


# A bill of each insurance class: 甲 A 100.00, 乙 B 200.00 with 10 % self-paid first, 丙 C 50.00.
ITEMS = [
    {"code": "A001", "name": "诊查费", "category": "A", "quantity": 1, "unit_price_fen": 10_000},
    {"code": "B002", "name": "阿托伐他汀", "category": "B", "self_share_permille": 100, "quantity": 2,
     "unit_price_fen": 10_000},
    {"code": "C003", "name": "自费耗材", "category": "C", "quantity": 1, "unit_price_fen": 5_000},
]
