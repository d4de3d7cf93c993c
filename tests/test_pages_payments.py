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
from factories import (
    ARTIFACTS,
    HOLDER_PERSON,
    card_holder,
    hospital_system,
    live,
    make_institution,
    make_staff,
    person,
)
from payments_world import ITEMS, insure, open_account, platform_settings, services

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
from ehc.web.payments import failure_text

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
def settings(database_url: str, keys_dir: Path, tmp_path: Path, world) -> Settings:  # noqa: ANN001
    """The TestClient tests' platform (SQLite and PostgreSQL), pointed at the same services."""
    return platform_settings(database_url, keys_dir, tmp_path, *world)


@pytest.fixture
def browser_world(tmp_path: Path) -> Iterator[tuple]:
    """Services of the browser test's own: its reconciliation sees only its own movements."""
    with services(tmp_path / "browser-services") as pair:
        yield pair


@pytest.fixture
def sqlite_platform(keys_dir: Path, tmp_path: Path, browser_world) -> Iterator[Platform]:  # noqa: ANN001
    """The browser tests' SQLite platform, pointed at this module's insurance service and bank."""
    url = f"sqlite:///{tmp_path / 'browser.sqlite3'}"
    upgrade(url)
    settings = platform_settings(url, keys_dir, tmp_path, *browser_world)
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


def test_resident_cashier_and_finance_pages_in_chromium(live_server, sqlite_platform, chromium, browser_world):
    insurer, bank = browser_world
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

    # A fourth bill paid in the app while the bank charges but answers 500 every time: the page says
    # the payment is still being settled, and the bill waits (settling) for the next try.
    open_account(bank, ACCOUNT, RESIDENT["name"], 100_000)
    fourth = _send_bill(http, his, ehc_id, "PB0004")
    bank.fault("charge", "error_after_effect", times=20)
    try:
        page.goto(f"{live_server}/me/bills/{fourth}?lang=en")
        page.locator("#pay-in-app").click()
        page.wait_for_url(f"**/me/bills/{fourth}")
    finally:
        bank.clear_faults()
    assert EN["flash.payment_pending"] in page.locator(".notice-flash").inner_text()
    assert page.locator("#settlement-pending").is_visible() and page.locator("#receipt").count() == 0

    # Finance reconciles today: the bank's statement proves the charge, which is repaired; the ledger
    # balances; the findings download as CSV.
    office = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    office.add_cookies([{"name": "ehc_staff", "value": finance, "domain": host, "path": "/"}])
    books = office.new_page()
    books.goto(f"{live_server}/staff?lang=en")
    books.locator("#finance-link").click()
    books.wait_for_url("**/staff/payments/reconciliation")
    today = china_today().isoformat()
    assert books.locator("#day").inner_text() == today
    assert books.locator("#no-findings").is_visible()
    books.locator("#reconcile").click()
    books.wait_for_url(f"**/staff/payments/reconciliation?day={today}")
    assert EN["flash.reconciled_repaired"].replace("{value}", today) in books.locator(".notice-flash").inner_text()
    repaired = books.locator("#findings tbody tr")
    assert repaired.count() == 1 and EN["payments.finding.repaired"] in repaired.inner_text()
    assert "¥126.00" in repaired.inner_text() and EN["payments.source.bank"] in repaired.inner_text()
    assert EN["payments.finding.repaired"] in books.locator("#finding-counts").inner_text()
    assert books.locator("#ledger-balanced").is_visible()
    csv = books.request.get(f"{live_server}/staff/payments/reconciliation.csv?day={today}")
    assert csv.status == 200 and csv.text().startswith("source,platform_id,finding")
    assert ",repaired,12600,12600,charge" in csv.text()
    books.screenshot(path=str(ARTIFACTS / "payments-reconciliation-en.png"), full_page=True)
    page.goto(f"{live_server}/me/bills/{fourth}?lang=en")  # the resident's bill is paid now
    assert page.locator("#bill-status").get_attribute("data-status") == "paid" and page.locator("#receipt-no").count()
    resident.close()
    books.goto(f"{live_server}/staff/payments/reconciliation?day={today}&lang=zh")
    assert books.locator("h1").inner_text().startswith(ZH["payments.finance_title"])
    assert books.locator("#ledger-balanced").inner_text().startswith(ZH["payments.ledger_balanced"][:4])
    assert books.goto(f"{live_server}/staff/payments").status == 403  # finance does not keep the till
    office.close()
    assert re.fullmatch(r"[0-9A-F]{64}", ehc_id)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _as(client, cookie: str, headers: dict[str, str]) -> None:  # noqa: ANN001
    client.cookies.clear()
    client.cookies.set(cookie, headers["Authorization"].removeprefix("Bearer "))


def test_pages_in_both_languages_with_their_refusals(client, platform, institution, his, holder, world):
    """On both databases: every payment page in English and 简体中文, each refusal in words, another
    institution's bill "not found", a removed bank card failing a payment in the page's language."""
    insurer, bank = world
    ehc_id, me = holder
    insure(insurer, HOLDER_PERSON, balance=5_000, deductible_met=80_000)
    open_account(bank, ACCOUNT, HOLDER_PERSON["name"], 100_000)
    admin = make_staff(platform, client, "institution_admin", institution)
    cashier = make_staff(platform, client, "cashier", institution)
    auditor = make_staff(platform, client, "auditor", None)
    elsewhere = make_institution(platform, "inst-pay-other", uscc="12440300MB0000001X", name="Shenzhen Clinic",
                                 region_code="440304", level="1")
    stranger = make_staff(platform, client, "cashier", elsewhere)

    _as(client, "ehc_resident", me)
    for lang, words in (("en", EN), ("zh", ZH)):
        shown = client.get(f"/me/payments?lang={lang}")
        assert shown.status_code == 200 and words["payments.link_bank_title"] in shown.text
    assert client.post("/me/payments/insurance", data={"csrf_token": "wrong"}).status_code == 403
    linked = client.post("/me/payments/insurance", data={"csrf_token": _csrf(shown.text)})
    assert linked.status_code == 200 and ZH["payments.scheme.employee"] in linked.text  # followed the 303
    refused = client.post("/me/payments/bank", data={"csrf_token": _csrf(shown.text), "account_no": "6222000011112222"})
    assert refused.status_code == 409 and ZH["payments.errors.bank_account_refused"] in refused.text
    assert "6222000011112222" in refused.text  # the form keeps what was typed
    client.post("/me/payments/bank", data={"csrf_token": _csrf(shown.text), "account_no": ACCOUNT})
    bill = _send_bill(client, his, ehc_id, "TB0001")
    for lang, words in (("en", EN), ("zh", ZH)):
        listed = client.get(f"/me/bills?lang={lang}")
        assert listed.status_code == 200 and words["payments.status.open"] in listed.text and bill in listed.text
        page = client.get(f"/me/bills/{bill}?lang={lang}")
        assert page.status_code == 200 and "¥224.00" in page.text and words["payments.pay_in_app"] in page.text
    assert client.get("/me/bills/no-such-bill").status_code == 404

    # The bank card removed, a payment cannot charge the rest: it fails, and the page says why in Chinese.
    removed = client.post("/me/payments/remove", data={"csrf_token": _csrf(page.text), "kind": "bank"})
    assert removed.status_code == 200 and ACCOUNT[-4:] not in removed.text
    again = client.post("/me/payments/remove", data={"csrf_token": _csrf(page.text), "kind": "bank"})
    assert again.status_code == 409 and ZH["payments.errors.not_linked"] in again.text
    paid = client.post(f"/me/bills/{bill}/pay", data={"csrf_token": _csrf(page.text)})
    assert paid.status_code == 200 and ZH["flash.payment_failed"] in paid.text
    assert failure_text(i18n.translator("zh"), "no bank card linked for the rest") in paid.text
    assert ZH["payments.status.open"] in paid.text  # the insurer's share was reversed: open again

    # The institution admin reads the bill but has no scan field; another institution's cashier gets "not found".
    _as(client, "ehc_staff", admin)
    seen = client.get(f"/staff/payments/{bill}?lang=en")
    assert seen.status_code == 200 and EN["payments.items_title"] in seen.text and 'id="code"' not in seen.text
    _as(client, "ehc_staff", stranger)
    assert client.get(f"/staff/payments/{bill}").status_code == 404
    assert bill not in client.get("/staff/payments").text
    _as(client, "ehc_staff", cashier)
    for lang, words in (("en", EN), ("zh", ZH)):
        till = client.get(f"/staff/payments/{bill}?lang={lang}")
        assert till.status_code == 200 and words["payments.scan_title"] in till.text and "autofocus" in till.text
    health_only = client.post("/api/v1/me/qr/dynamic", headers=me).json()["text"]  # a health code, no payment part
    scanned = client.post(f"/staff/payments/{bill}/settle", data={"csrf_token": _csrf(till.text), "code": health_only})
    assert scanned.status_code == 422 and ZH["payments.errors.payment_part_missing"] in scanned.text
    empty = client.post(f"/staff/payments/{bill}/settle", data={"csrf_token": _csrf(till.text), "code": "  "})
    assert empty.status_code == 422 and ZH["errors.required"] in empty.text

    # Finance: a day written wrong is said so; the CSV of a day with nothing stored is its header.
    _as(client, "ehc_staff", auditor)
    for lang, words in (("en", EN), ("zh", ZH)):
        books = client.get(f"/staff/payments/reconciliation?lang={lang}")
        assert books.status_code == 200 and words["payments.ledger_title"] in books.text
    wrong = client.post("/staff/payments/reconciliation", data={"csrf_token": _csrf(books.text), "day": "3 Dec"})
    assert wrong.status_code == 422 and ZH["payments.errors.day_invalid"] in wrong.text
    assert client.get("/staff/payments/reconciliation?day=2026-02-30").status_code == 422
    csv = client.get("/staff/payments/reconciliation.csv?day=2020-01-01")
    assert csv.status_code == 200 and csv.text.strip() == "source,platform_id,finding,ours_fen,theirs_fen,detail"
