"""Payment pages in Chromium, against the insurance service and the bank running as separate processes
(``payments_world.services``): the resident links insurance and a bank card, sees a bill's split and
pays it in the app; draws a bill's payment code that the cashier's scan field settles; a replayed
code is refused in words; finance reconciles the day and sees a balanced ledger. In English and 简体中文,
with screenshots in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from factories import ARTIFACTS, card_holder, hospital_system, live, make_institution, person
from payments_world import ITEMS, insure, open_account, services

from ehc.accounts import service as accounts
from ehc.app import create_app
from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit.clock import china_today
from ehc.kit.context import Actor, Vault
from ehc.migrate import upgrade
from ehc.platform import Platform
from ehc.web import i18n

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")
RESIDENT = person("赵小燕", date(1988, 4, 12), 73, False, phone="13900000731")
ACCOUNT = "6222020000007312"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    with services(tmp_path_factory.mktemp("payment-services")) as pair:
        yield pair


@pytest.fixture
def sqlite_platform(keys_dir: Path, tmp_path: Path, world) -> Iterator[Platform]:  # noqa: ANN001
    """The browser tests' SQLite platform, pointed at this module's insurance service and bank."""
    insurer, bank = world
    url = f"sqlite:///{tmp_path / 'browser.sqlite3'}"
    upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, keys_dir=keys_dir, insurance_url=insurer.url,
                        bank_url=bank.url, payments_timeout=1.0, public_url="http://127.0.0.1:9")
    keys = KeyStore(settings.keys_dir)
    db = Database(url)
    yield Platform(settings=settings, db=db, keys=keys, vault=Vault(keys))
    db.dispose()


@pytest.fixture
def live_server(sqlite_platform: Platform) -> Iterator[str]:
    with live(create_app(sqlite_platform)) as url:
        yield url


def _staff_token(http: httpx.Client, platform: Platform, username: str, role: str, institution: str | None) -> str:
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username=username, password=PASSWORD, role=role,
                              institution_id=institution)
    answer = http.post("/api/v1/auth/staff/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def _send_bill(http: httpx.Client, his, ehc_id: str, bill_no: str) -> str:  # noqa: ANN001
    answer = http.post("/api/v1/payments/bills", auth=his, json={"bill_no": bill_no, "ehc_id": ehc_id, "items": ITEMS})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _summary(page) -> str:  # noqa: ANN001
    return page.locator("#error-summary").inner_text()


def test_resident_cashier_and_finance_pages_in_chromium(live_server, sqlite_platform, chromium, world):
    insurer, bank = world
    platform = sqlite_platform
    institution = make_institution(platform, "inst-pay-pages", uscc="12510000MB1234567X", name="锦江区人民医院",
                                   region_code="510104", level="3A")
    his = hospital_system(platform, institution)
    http = httpx.Client(base_url=live_server, timeout=30)
    cashier = _staff_token(http, platform, "zhou.cashier", "cashier", institution)
    finance = _staff_token(http, platform, "qian.finance", "platform_admin", None)
    ehc_id, me = card_holder(http, platform, RESIDENT)
    insure(insurer, RESIDENT, balance=5_000, deductible_met=80_000)
    open_account(bank, ACCOUNT, RESIDENT["name"], 100_000)
    host = live_server.split("//")[1].split(":")[0]
    resident_cookie = {"name": "ehc_resident", "value": me["Authorization"].removeprefix("Bearer "),
                       "domain": host, "path": "/"}

    # The resident links medical insurance and a bank card on /me/payments (English).
    resident = chromium.new_context(locale="en-US", viewport={"width": 414, "height": 900})
    resident.add_cookies([resident_cookie])
    page = resident.new_page()
    page.goto(f"{live_server}/me?lang=en")
    page.locator("#my-payment-methods").click()
    page.wait_for_url("**/me/payments")
    assert EN["payments.nothing_linked"] in page.inner_text("main")
    page.locator("#link-insurance").click()
    page.wait_for_url("**/me/payments")
    assert "employee scheme" in page.locator(".link-insurance").inner_text()
    page.locator("#account_no").fill("6222 0200 0000 0000")  # not the holder's: the bank refuses
    page.locator("#link-bank").click()
    assert EN["payments.errors.bank_account_refused"] in _summary(page)
    page.locator("#account_no").fill(ACCOUNT)
    page.locator("#link-bank").click()
    page.wait_for_url("**/me/payments")
    linked = page.locator(".link-bank").inner_text()
    assert linked.count("7312") == 1 and ACCOUNT not in page.content()
    page.screenshot(path=str(ARTIFACTS / "payments-links-en.png"), full_page=True)

    # A hospital system sends a bill; the resident sees its split and pays it in the app.
    first = _send_bill(http, his, ehc_id, "PB0001")
    page.get_by_role("link", name=EN["nav.bills"]).first.click()
    page.wait_for_url("**/me/bills")
    page.locator(f'tr[data-bill="{first}"] a').click()
    page.wait_for_url(f"**/me/bills/{first}")
    assert page.locator("#bill-total").inner_text() == "¥350.00"
    assert (page.locator("#split-fund").inner_text(), page.locator("#split-account").inner_text(),
            page.locator("#split-cash").inner_text()) == ("¥224.00", "¥50.00", "¥76.00")
    assert EN["payments.category.B"] in page.locator("#bill-items").inner_text()
    page.locator("#pay-in-app").click()
    page.wait_for_url(f"**/me/bills/{first}")
    receipt = page.locator("#receipt-no").inner_text()
    assert receipt.startswith("R") and receipt in page.locator(".notice-flash").inner_text()
    assert page.locator("#receipt-cash").inner_text() == "¥76.00"
    assert page.locator("#bill-status").get_attribute("data-status") == "paid"
    page.screenshot(path=str(ARTIFACTS / "payments-receipt-en.png"), full_page=True)

    # A second bill: the resident shows its payment code (简体中文) ...
    second = _send_bill(http, his, ehc_id, "PB0002")
    page.goto(f"{live_server}/me/bills/{second}?lang=zh")
    assert page.locator("#split-title").inner_text() == ZH["payments.split_title"]
    page.locator("#show-bill-code").click()
    image = page.locator("#bill-code-image")
    assert image.is_visible() and image.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("document.getElementById('bill-code-image').naturalWidth") > 100
    code = page.locator("#bill-code-text").text_content().strip()
    assert code.startswith("EHCM1:")
    page.screenshot(path=str(ARTIFACTS / "payments-code-zh.png"), full_page=True)

    # ... and the cashier's scanner types it into the scan field, which has the focus (简体中文).
    desk = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 1000})
    desk.add_cookies([{"name": "ehc_staff", "value": cashier, "domain": host, "path": "/"}])
    till = desk.new_page()
    till.goto(f"{live_server}/staff?lang=zh")
    till.locator("#payments-link").click()
    till.wait_for_url("**/staff/payments")
    rows = till.locator("#bills tbody tr")
    assert rows.first.get_attribute("data-bill") == second  # open bills first
    assert ZH["payments.status.paid"] in till.locator(f'tr[data-bill="{first}"]').inner_text()
    till.locator(f'tr[data-bill="{second}"] a').click()
    till.wait_for_url(f"**/staff/payments/{second}")
    assert till.evaluate("document.activeElement.id") == "code"
    # The first bill emptied the personal account: the bank card now takes its 50.00 too.
    assert (till.locator("#split-account").inner_text(), till.locator("#split-cash").inner_text()) == ("¥0.00", "¥126.00")
    till.keyboard.insert_text(code)
    till.keyboard.press("Enter")
    till.wait_for_url(f"**/staff/payments/{second}")
    assert till.locator("#receipt-no").inner_text().startswith("R")
    assert till.locator("#bill-status").inner_text() == ZH["payments.status.paid"]
    assert till.locator("#code").count() == 0  # a paid bill has no scan field
    till.screenshot(path=str(ARTIFACTS / "payments-cashier-receipt-zh.png"), full_page=True)

    # A third bill whose bank charge is declined: the code is used, and scanning it again is a replay.
    open_account(bank, ACCOUNT, RESIDENT["name"], 100)  # too little left: the bank declines
    third = _send_bill(http, his, ehc_id, "PB0003")
    page.goto(f"{live_server}/me/bills/{third}?lang=zh")
    page.locator("#show-bill-code").click()
    again = page.locator("#bill-code-text").text_content().strip()
    till.goto(f"{live_server}/staff/payments/{third}?lang=en")
    till.locator("#code").fill(again)
    till.locator("#settle").click()
    till.wait_for_url(f"**/staff/payments/{third}")
    assert EN["flash.settlement_failed"] in till.locator(".notice-flash").inner_text()
    assert till.locator("#settlement-failed").is_visible()
    till.locator("#code").fill(again)
    till.locator("#settle").click()
    assert EN["payments.errors.payment_code_replayed"] in _summary(till)
    till.screenshot(path=str(ARTIFACTS / "payments-replayed-en.png"), full_page=True)
    till.goto(f"{live_server}/staff/payments/{third}?lang=zh")
    till.locator("#code").fill(again)
    till.locator("#settle").click()
    assert ZH["payments.errors.payment_code_replayed"] in _summary(till)
    till.locator("#code").fill(code)  # the second bill's code on the third bill
    till.locator("#settle").click()
    assert ZH["payments.errors.payment_code_altered"] in _summary(till)
    desk.close()
    resident.close()

    # Finance reconciles today and sees the ledger balance; the findings download as CSV.
    office = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    office.add_cookies([{"name": "ehc_staff", "value": finance, "domain": host, "path": "/"}])
    books = office.new_page()
    books.goto(f"{live_server}/staff?lang=en")
    books.locator("#finance-link").click()
    books.wait_for_url("**/staff/payments/reconciliation")
    today = china_today().isoformat()
    assert books.locator("#day").inner_text() == today
    books.locator("#reconcile").click()
    books.wait_for_url(f"**/staff/payments/reconciliation?day={today}")
    assert EN["flash.reconciled_clean"].replace("{value}", today) in books.locator(".notice-flash").inner_text()
    assert books.locator("#no-findings").is_visible()
    assert books.locator("#ledger-balanced").is_visible()
    csv = books.request.get(f"{live_server}/staff/payments/reconciliation.csv?day={today}")
    assert csv.status == 200 and csv.text().startswith("source,platform_id,finding")
    books.screenshot(path=str(ARTIFACTS / "payments-reconciliation-en.png"), full_page=True)
    books.goto(f"{live_server}/staff/payments/reconciliation?day={today}&lang=zh")
    assert books.locator("h1").inner_text().startswith(ZH["payments.finance_title"])
    assert books.locator("#ledger-balanced").inner_text().startswith(ZH["payments.ledger_balanced"][:4])
    assert books.goto(f"{live_server}/staff/payments").status == 403  # finance does not keep the till
    office.close()
    assert re.fullmatch(r"[0-9A-F]{64}", ehc_id)
