"""The QR pages: the resident's code page that redraws its dynamic code (/me/code), and the window
staff's print page for the static code (/staff/print, /staff/cards/{ehc_id}/print).

TestClient tests run on SQLite and PostgreSQL; the browser scenarios run once in Chromium against a
live server (tests/browser.py), read the QR codes off screenshots with zxing-cpp and verify them on
the platform's own verify endpoint.
"""

from __future__ import annotations

import io
import time

import httpx
import pytest
import zxingcpp
from factories import ARTIFACTS, card_holder, make_institution, make_staff
from PIL import Image
from sqlalchemy import update
from test_qr_issue_surfaces import read_pdf
from test_qr_service import PERSON

from ehc.accounts import service as accounts
from ehc.cards.models import Card
from ehc.institutions.models import Institution
from ehc.web import i18n
from ehc.kit.context import Actor

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")


def resident_token(http, platform) -> str:
    """Apply for a card and sign in with a text-message code: the resident's bearer token."""
    return bearer(card_holder(http, platform, PERSON)[1])


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def decode_screenshot(png: bytes) -> zxingcpp.Barcode:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, "no QR code in the screenshot"
    return found[0]


# -- without a browser ---------------------------------------------------------------------------

def test_code_page_for_me_my_family_and_a_lost_card(client, platform):
    token = resident_token(client, platform)
    assert client.get("/me/code", follow_redirects=False).headers["location"] == "/sign-in?next=/me/code"

    client.cookies.set("ehc_resident", token)
    page = client.get("/me/code?lang=en")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert EN["qr_code.title"] in page.text and 'id="qr-code"' in page.text
    assert 'data-endpoint="/api/v1/me/qr/dynamic.png"' in page.text and 'data-refresh="60"' in page.text
    assert 'data-payment-channel="sandbox"' in page.text and "/static/qr.js" in page.text
    assert 'href="/me/code"' in client.get("/me").text  # linked from my card, and in the menu

    zh = client.get("/me/code?lang=zh").text
    assert ZH["qr_code.title"] in zh and ZH["qr_code.payment_toggle"] in zh

    assert client.get(f"/me/code?member={'A' * 64}").status_code == 404  # not a card I guard

    # A lost card: set directly (the card service's hooks would also end this sign-in, which is tested there).
    with platform.db.session() as session:
        session.execute(update(Card).values(status="lost"))
    lost = client.get("/me/code?lang=en")
    assert lost.status_code == 200 and 'id="qr-inactive"' in lost.text and 'id="qr-code"' not in lost.text
    assert 'id="show-code"' not in client.get("/me").text


def test_print_page_is_for_window_work(client, platform, institution):
    token = resident_token(client, platform)
    ehc_id = client.get("/api/v1/me/card", headers={"Authorization": f"Bearer {token}"}).json()["ehc_id"]
    clerk = make_staff(platform, client, "window_clerk", institution)
    client.cookies.set("ehc_staff", bearer(clerk))

    home = client.get("/staff?lang=en")
    assert 'href="/staff/print"' in home.text and EN["nav.staff_print"] in home.text
    assert client.get("/staff/print?lang=en").status_code == 200
    bad = client.get("/staff/print?ehc_id=12345&lang=en")
    assert bad.status_code == 422 and EN["staff_print.id_invalid"] in bad.text
    spaced = " ".join(ehc_id[i:i + 8].lower() for i in range(0, 64, 8))
    found = client.get("/staff/print", params={"ehc_id": spaced}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/staff/cards/{ehc_id}/print"

    page = client.get(f"/staff/cards/{ehc_id}/print?lang=zh")
    assert page.status_code == 200 and ZH["staff_print.title"] in page.text
    for kind in ("png", "svg", "pdf"):
        assert f'href="/api/v1/cards/{ehc_id}/qr/static.{kind}"' in page.text
    assert client.get(f"/staff/cards/{'0' * 64}/print").status_code == 404

    nurse = make_staff(platform, client, "nurse", institution)
    client.cookies.set("ehc_staff", bearer(nurse))
    assert client.get("/staff/print").status_code == 403
    assert 'href="/staff/print"' not in client.get("/staff").text


# -- in Chromium ---------------------------------------------------------------------------------

@pytest.fixture
def quick_redraw(monkeypatch):
    """Redraw every 2 s instead of 60 s, so the browser sees a redraw in seconds (read by Settings)."""
    monkeypatch.setenv("EHC_QR_REFRESH_SECONDS", "2")


def _verifier(platform, base: str) -> dict[str, str]:
    with platform.db.session() as session:
        exists = session.get(Institution, "inst-qr-pages") is not None
    if not exists:
        make_institution(platform, "inst-qr-pages", uscc="12510000MB1234567X", name="QR Pages Hospital",
                         kind="hospital", region_code="510104", level="3A")
    with httpx.Client(base_url=base, timeout=30) as http:
        return make_staff(platform, http, "doctor", "inst-qr-pages")


def until(condition, timeout: float = 10.0) -> None:
    """Poll from Python: the pages' CSP forbids the eval that page.wait_for_function needs."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _draws(page) -> int:
    return int(page.locator("#qr-code").get_attribute("data-draws") or 0)


def test_the_code_page_redraws_in_chromium(quick_redraw, live_server, sqlite_platform, chromium):
    http = httpx.Client(base_url=live_server, timeout=30)
    token = resident_token(http, sqlite_platform)
    doctor = _verifier(sqlite_platform, live_server)

    def verify(text: str) -> httpx.Response:
        return http.post("/api/v1/qr/verify", json={"code": text, "scene": "0101011", "channel": "0100"},
                         headers=doctor)

    context = chromium.new_context(locale="zh-CN", viewport={"width": 420, "height": 900}, device_scale_factor=2)
    host = live_server.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "ehc_resident", "value": token, "domain": host, "path": "/"}])
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server}/me?lang=zh")
    page.locator("#show-code").click()
    page.wait_for_url("**/me/code")
    page.wait_for_selector("#qr-code[data-state=ready]")
    assert page.locator("#qr-countdown").inner_text().strip() != ""
    first = decode_screenshot(page.locator("#qr-image").screenshot())
    assert first.text.startswith("EHC1:")
    page.screenshot(path=str(ARTIFACTS / "me-code-zh.png"), full_page=True)

    # Before it expires, the page has drawn a fresh one by itself.
    seen = _draws(page)
    until(lambda: _draws(page) > seen)
    page.wait_for_selector("#qr-code[data-state=ready]")
    second = decode_screenshot(page.locator("#qr-image").screenshot())
    assert second.text.startswith("EHC1:") and second.text != first.text
    assert verify(second.text).status_code == 200  # what the screen shows is a working code

    # Two codes in one.
    page.locator("#qr-payment").check()
    page.wait_for_selector("#qr-code[data-two-in-one='1'][data-state=ready]")
    both = decode_screenshot(page.locator("#qr-image").screenshot())
    assert both.text.startswith("EHCM1:") and both.extra["Version"] == "10"  # §10: the 55-byte CPM template
    answer = verify(both.text)
    assert answer.status_code == 200 and answer.json()["code_type"] == 0, answer.text
    page.screenshot(path=str(ARTIFACTS / "me-code-two-in-one-zh.png"), full_page=True)

    # The sign-in ends elsewhere: the next draw (at once, as when the tab comes back) says so.
    assert http.post("/api/v1/auth/resident/sign-out", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_selector("#qr-code[data-state=stopped]", timeout=10_000)
    assert page.locator("#qr-image").is_hidden()
    status = page.locator("#qr-status")
    assert ZH["qr_code.session_ended"] in status.inner_text()
    assert "/sign-in?next=/me/code" in status.locator("a").get_attribute("href")
    assert not [e for e in errors if "Content Security Policy" in e], errors
    context.close()


def test_window_staff_print_a_static_code_in_chromium(live_server, sqlite_platform, chromium, tmp_path):
    http = httpx.Client(base_url=live_server, timeout=30)
    token = resident_token(http, sqlite_platform)
    ehc_id = http.get("/api/v1/me/card", headers={"Authorization": f"Bearer {token}"}).json()["ehc_id"]
    doctor = _verifier(sqlite_platform, live_server)
    with sqlite_platform.db.session() as session:
        accounts.create_staff(sqlite_platform.ctx(session, Actor.system()), username="zhang.window", password="correct horse battery",
                              role="window_clerk", institution_id="inst-qr-pages")
    clerk = http.post("/api/v1/auth/staff/token", json={"username": "zhang.window",
                                                        "password": "correct horse battery"}).json()["access_token"]

    context = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    host = live_server.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "ehc_staff", "value": clerk, "domain": host, "path": "/"}])
    page = context.new_page()
    page.goto(f"{live_server}/staff?lang=en")
    page.get_by_role("link", name=EN["nav.staff_print"]).click()
    page.wait_for_url("**/staff/print")
    page.locator("#ehc_id").fill(ehc_id.lower())
    page.get_by_role("button", name=EN["staff_print.find"]).click()
    page.wait_for_url(f"**/staff/cards/{ehc_id}/print")
    until(lambda: page.locator("#static-qr").evaluate("img => img.naturalWidth") > 0)
    shown = decode_screenshot(page.locator("#static-qr").screenshot())
    assert shown.text.startswith("EHC1:") and shown.extra["Version"] == "6"
    page.screenshot(path=str(ARTIFACTS / "staff-print-en.png"), full_page=True)
    assert page.get_by_role("button", name=EN["staff_print.print"]).is_visible()

    label = page.request.get(live_server + page.locator("#download-pdf").get_attribute("href"))
    assert label.status == 200 and label.headers["content-type"] == "application/pdf"
    printed = read_pdf(label.body(), tmp_path)
    for text, kind in ((shown.text, "image"), (printed.text, "label")):
        answer = http.post("/api/v1/qr/verify", json={"code": text, "scene": "0101011", "channel": "0100"},
                           headers=doctor)
        assert answer.status_code == 200 and answer.json()["code_type"] == 1, (kind, answer.text)
    svg = page.request.get(live_server + page.locator("#download-svg").get_attribute("href"))
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    context.close()
