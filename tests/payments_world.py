"""The payment world of the tests and benchmarks: the insurance service and the bank started as real
processes (``ehc sandbox insurance|bank``), and a patient known to both."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
from factories import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    kind: str  # insurance | bank
    port: int
    data: Path
    process: subprocess.Popen | None = None
    callback_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Service":
        command = [sys.executable, "-m", "ehc.cli", "sandbox", self.kind, "--port", str(self.port),
                   "--data", str(self.data)]
        if self.callback_url:
            command += ["--callback-url", self.callback_url]
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/key", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"the {self.kind} sandbox did not start: " + self.process.stderr.read().decode()[-2000:])

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        answer = httpx.request(method, f"{self.url}{path}", json=body, timeout=10)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else {}

    def fault(self, operation: str, fault: str, *, times: int = 1, delay: float = 1.5) -> None:
        self.admin("POST", "/admin/faults", {"operation": operation, "fault": fault, "times": times, "delay": delay})

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/admin/faults", timeout=10)


@contextmanager
def services(root: Path, callback_url: str | None = None) -> Iterator[tuple[Service, Service]]:
    insurer = Service("insurance", free_port(), root / "insurance").start()
    bank = Service("bank", free_port(), root / "bank", callback_url=callback_url).start()
    try:
        yield insurer, bank
    finally:
        insurer.stop()
        bank.stop()


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
