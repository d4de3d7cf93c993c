"""kill -9 in the middle of a settlement: of the platform, of the bank, of the insurer. After a restart
the settlement completes (the outbox resumes it), the bank is charged once and the books balance."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from factories import HOLDER_PERSON, hospital_system, make_institution, resident_sign_in
from payments_world import ITEMS, Service, balance, insure, open_account, services
from sandbox_services import free_port
from sqlalchemy import select
from test_crash import start_server

from ehc.config import Settings
from ehc.kit.context import Actor
from ehc.payments import service
from ehc.payments.models import Bill, Settlement

ACCOUNT = "6222020000009876"
CASH = 7_600  # of ITEMS for an employee with the deductible met and 50.00 in the personal account


@pytest.fixture
def settings(database_url: str, keys_dir: Path, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, keys_dir=keys_dir)


def _platform_env(insurer: Service, bank: Service, port: int) -> dict[str, str]:
    return {"EHC_INSURANCE_URL": insurer.url, "EHC_BANK_URL": bank.url, "EHC_PAYMENTS_TIMEOUT": "1",
            "EHC_PUBLIC_URL": f"http://127.0.0.1:{port}"}


def _serve(platform, insurer: Service, bank: Service, port: int):  # noqa: ANN001, ANN202
    os.environ.update(_platform_env(insurer, bank, port))  # start_server passes os.environ on
    try:
        return start_server(platform.settings, port)
    finally:
        for name in _platform_env(insurer, bank, port):
            os.environ.pop(name, None)


def _world(platform, client, insurer: Service, bank: Service, url: str) -> tuple[str, dict, dict]:  # noqa: ANN001
    """A linked, insured patient and an open bill of theirs: (bill id, resident headers, HIS auth)."""
    institution = make_institution(platform, "inst-crash-01", uscc="12510000MB1234567X", name="Crash Hospital",
                                   kind="hospital", region_code="510104", level="3A")
    his = hospital_system(platform, institution)
    made = client.post("/api/v1/cards", json=HOLDER_PERSON)
    assert made.status_code == 201, made.text
    headers = resident_sign_in(client, platform, HOLDER_PERSON["phone"])
    insure(insurer, HOLDER_PERSON, balance=5_000, deductible_met=80_000)
    open_account(bank, ACCOUNT, HOLDER_PERSON["name"], 100_000)
    for path, body in (("insurance", {}), ("bank", {"account_no": ACCOUNT})):
        linked = client.post(f"/api/v1/me/payments/{path}", json=body, headers=headers)
        assert linked.status_code == 201, linked.text
    bill = client.post(f"/api/v1/payments/bills", auth=his,
                       json={"bill_no": "CRASH-1", "ehc_id": made.json()["ehc_id"], "items": ITEMS})
    assert bill.status_code == 201, bill.text
    return bill.json()["id"], headers, his


def _status(platform, bill_id: str) -> tuple[str, str | None]:  # noqa: ANN001
    with platform.db.session() as session:
        bill = session.get(Bill, bill_id)
        row = session.scalars(select(Settlement).where(Settlement.bill_id == bill_id)
                              .order_by(Settlement.created_at.desc())).first()
        return bill.status, row.status if row else None


def _wait_for(predicate, seconds: float = 60, what=None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what() if what else ''}"
        time.sleep(0.1)


def _pay_in_background(url: str, bill_id: str, headers: dict) -> threading.Thread:
    def pay() -> None:
        try:
            httpx.post(f"{url}/api/v1/me/bills/{bill_id}/pay", headers=headers, timeout=30)
        except httpx.HTTPError:
            pass  # the server was killed under it
    thread = threading.Thread(target=pay, daemon=True)
    thread.start()
    return thread


def _books_balance(platform) -> None:  # noqa: ANN001
    with platform.db.session() as session:
        check = service.check_ledger(platform.ctx(session, Actor.system("test")))
    assert check.balanced, check.problems


@pytest.mark.parametrize("victim", ["platform", "bank", "insurer"])
def test_kill_9_in_the_middle_of_a_settlement_completes_once(platform, tmp_path, victim: str):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with services(tmp_path / "services", callback_url=None) as (insurer, bank), \
            httpx.Client(base_url=url, timeout=30) as client:
        server = _serve(platform, insurer, bank, port)
        try:
            bill_id, headers, _ = _world(platform, client, insurer, bank, url)
            before = balance(bank, ACCOUNT)
            # The call in flight when the victim dies: the bank's charge (or the insurer's settle)
            # takes effect, then answers late.
            target, operation, moment = ((insurer, "settle", "insuring") if victim == "insurer"
                                         else (bank, "charge", "charging"))
            target.fault(operation, "late", delay=3.0)
            _pay_in_background(url, bill_id, headers)
            _wait_for(lambda: _status(platform, bill_id)[1] == moment, what=lambda: _status(platform, bill_id))
            time.sleep(0.8)  # the call has reached the service and taken effect there
            if victim == "platform":
                os.kill(server.pid, 9)
                server.wait()
                server = _serve(platform, insurer, bank, port)
            else:
                target.kill9()
                target.start()  # same port, same data: what it acknowledged is there
            _wait_for(lambda: _status(platform, bill_id) == ("paid", "paid"), 90, what=lambda: (
                _status(platform, bill_id), server.stderr.read1().decode()[-3000:] if victim == "platform" else ""))
            assert before - balance(bank, ACCOUNT) == CASH  # charged once
            _books_balance(platform)
        finally:
            server.kill()
            server.wait()
