"""The second factor for static codes (docs/qr-format.md §9.1): a printed code at a payment or reports
step needs the card's PIN or a code texted to the holder; dynamic codes and other steps never do.
PINs: set and changed by the holder (or guardian), trivial ones refused, stored keyed and slow-hashed,
locked after five wrong tries, cleared by window staff with a reason. SMS codes: single use, expire,
burn after five wrong tries, rate limited, kept apart from sign-in codes. On SQLite and PostgreSQL;
every static code is printed as a PNG and read back with zxing-cpp."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from factories import ARTIFACTS, sms_code
from residents import resident_id
from sqlalchemy import select
from test_qr_codec import _png_to_gray, _zxing_read

from ehc.accounts import residents as residents_service
from ehc.accounts import service as accounts
from ehc.accounts import sms
from ehc.cards import service as cards
from ehc.cards.models import Card, CardEvent
from ehc.kit.context import Actor
from ehc.qr import second_factor as factors
from ehc.qr.codec.codes import SECOND_FACTOR_SCENES
from ehc.qr.models import CardPin, CardUse

PHONE = "13912348800"
PERSON = {"name": "钱秀英", "document": {"type": "01", "number": resident_id(born=date(1948, 2, 3), sequence=61,
                                                                          male=False)},
          "sex": "2", "birth_date": "1948-02-03", "phone": PHONE}
PAYMENT, REPORTS, REGISTRATION = "0101051", "0101081", "0101011"
PIN = "482913"
PROBLEM = "application/problem+json"
ZH_JSON = Path(__file__).resolve().parents[1] / "src/ehc/web/locales/zh.json"


@pytest.fixture
def holder_person() -> dict:
    return PERSON


def last_code(platform, phone: str = PHONE) -> str:
    return sms_code(platform, phone)


def printed(client, clerk, ehc_id: str) -> str:
    png = client.get(f"/api/v1/cards/{ehc_id}/qr/static.png", headers=clerk)
    assert png.status_code == 200, png.text
    [(text, _, _)] = _zxing_read(*_png_to_gray(png.content))
    assert text.startswith("EHC1:")
    return text


def scan(client, his, code: str, scene: str, **second_factor):
    body = {"code": code, "scene": scene, "channel": "0100", "terminal_id": "C01"}
    if second_factor:
        body["second_factor"] = second_factor
    return client.post("/api/v1/qr/verify", json=body, auth=his)


def problem(answer, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["code"] == code, answer.text
    return answer.json()


def uses(platform) -> list[CardUse]:
    with platform.db.session() as session:
        return list(session.scalars(select(CardUse).order_by(CardUse.id)))


def set_pin(client, headers, pin: str, current: str | None = None, member: str | None = None):
    body = {"pin": pin} if current is None else {"pin": pin, "current_pin": current}
    return client.put("/api/v1/me/card/pin", json=body, headers=headers, params={"member": member} if member else None)


def test_the_scenes_that_need_a_second_factor() -> None:
    assert SECOND_FACTOR_SCENES == {"010105", "0101051", "0101052", "0101053", "010108", "0101081", "0101082"}


def test_a_static_code_at_payment_or_reports_needs_a_second_factor(client, platform, clerk, his, holder) -> None:
    ehc_id, resident = holder
    text = printed(client, clerk, ehc_id)
    for scene in (PAYMENT, REPORTS, "010105", "010108"):
        body = problem(scan(client, his, text, scene), 428, "second_factor_required")
        assert body["methods"] == ["sms_code"]  # no PIN set yet
    assert uses(platform) == []
    # Other steps take the printed code alone; a dynamic code never needs a second factor.
    assert scan(client, his, text, REGISTRATION).status_code == 200
    assert scan(client, his, text, "010102").status_code == 200
    drawn = client.post("/api/v1/me/qr/dynamic", headers=resident).json()["text"]
    assert scan(client, his, drawn, PAYMENT).status_code == 200
    assert [(u.scene, u.code_type) for u in uses(platform)] == [(REGISTRATION, 1), ("010102", 1), (PAYMENT, 0)]


def test_pin_set_checked_changed_and_locked(client, platform, clerk, his, holder, monkeypatch) -> None:
    ehc_id, resident = holder
    assert client.get("/api/v1/me/card/pin", headers=resident).json() == {"set": False, "locked_until": None}
    for trivial in ("000000", "123456", "654321", "890123", "121212", "123123", "112233"):
        body = problem(set_pin(client, resident, trivial), 422, "pin_too_simple")
        assert body["errors"][0]["field"] == "pin"
    for malformed in ("12345", "1234567", "12a456", "１２３４５６"):
        problem(set_pin(client, resident, malformed), 422, "pin_invalid")
    assert set_pin(client, resident, PIN).json() == {"set": True, "locked_until": None}

    text = printed(client, clerk, ehc_id)
    assert problem(scan(client, his, text, PAYMENT), 428, "second_factor_required")["methods"] == ["pin", "sms_code"]
    paid = scan(client, his, text, PAYMENT, pin=PIN)
    assert paid.status_code == 200, paid.text
    assert paid.json()["ehc_id"] == ehc_id and paid.json()["code_type"] == 1

    # Changing needs the current PIN; a wrong current PIN counts like a wrong PIN at a terminal.
    problem(set_pin(client, resident, "735164"), 422, "current_pin_required")
    assert problem(set_pin(client, resident, "735164", current="111111"), 422, "current_pin_wrong")["attempts_left"] == 4
    for left in (3, 2, 1):
        assert problem(scan(client, his, text, PAYMENT, pin="999999"), 422, "second_factor_invalid")["attempts_left"] == left
    locked = scan(client, his, text, REPORTS, pin="999998")
    problem(locked, 429, "second_factor_locked")
    assert 890 <= int(locked.headers["Retry-After"]) <= 900
    problem(scan(client, his, text, PAYMENT, pin=PIN), 429, "second_factor_locked")  # even the right one
    problem(set_pin(client, resident, "735164", current=PIN), 429, "second_factor_locked")
    status = client.get("/api/v1/me/card/pin", headers=resident).json()
    assert status["set"] and status["locked_until"] is not None
    assert len(uses(platform)) == 1  # refused verifications record nothing

    later = datetime.now(UTC) + timedelta(minutes=15, seconds=1)
    monkeypatch.setattr(factors, "utcnow", lambda: later)
    assert set_pin(client, resident, "735164", current=PIN).status_code == 200
    problem(scan(client, his, text, PAYMENT, pin=PIN), 422, "second_factor_invalid")
    assert scan(client, his, text, PAYMENT, pin="735164").status_code == 200


def test_the_pin_is_stored_keyed_slow_hashed_and_bound_to_its_card(client, platform, clerk, his, holder) -> None:
    ehc_id, resident = holder
    assert set_pin(client, resident, PIN).status_code == 200
    other = client.post("/api/v1/cards", json={
        "name": "钱大山", "document": {"type": "01", "number": resident_id(born=date(1950, 5, 5), sequence=62)},
        "sex": "1", "birth_date": "1950-05-05", "phone": "13912348801"}).json()["ehc_id"]
    with platform.db.session() as session:
        row = session.get(CardPin, ehc_id)
        assert row.digest.startswith("$argon2id$") and PIN not in row.digest
        # The same digest copied onto another card does not open it: the card id is in the keyed input.
        session.add(CardPin(ehc_id=other, digest=row.digest, failures=0))
    problem(scan(client, his, printed(client, clerk, other), PAYMENT, pin=PIN), 422, "second_factor_invalid")
    assert scan(client, his, printed(client, clerk, ehc_id), PAYMENT, pin=PIN).status_code == 200


def test_a_guardian_sets_a_family_members_pin(client, platform, clerk, his, holder) -> None:
    _, resident = holder
    child = {"name": "钱乐", "document": {"type": "01", "number": resident_id(born=date(2017, 7, 7), sequence=63)},
             "sex": "1", "birth_date": "2017-07-07", "relation": "child"}
    kid = client.post("/api/v1/me/family", json=child, headers=resident).json()["ehc_id"]
    assert set_pin(client, resident, "305917", member=kid).status_code == 200
    assert client.get("/api/v1/me/card/pin", headers=resident).json()["set"] is False  # mine is another card
    assert scan(client, his, printed(client, clerk, kid), REPORTS, pin="305917").status_code == 200
    problem(set_pin(client, resident, "305917", member="A" * 64), 404, "card_not_found")


def test_window_staff_clear_a_forgotten_pin_with_a_reason(client, platform, clerk, his, holder) -> None:
    ehc_id, resident = holder
    assert set_pin(client, resident, PIN).status_code == 200
    problem(client.request("DELETE", f"/api/v1/cards/{ehc_id}/pin", json={"reason": "  "}, headers=clerk),
            422, "reason_required")
    cleared = client.request("DELETE", f"/api/v1/cards/{ehc_id}/pin", json={"reason": "ID card checked at window 3"},
                             headers=clerk)
    assert cleared.status_code == 200 and cleared.json() == {"ehc_id": ehc_id, "cleared": True}
    again = client.request("DELETE", f"/api/v1/cards/{ehc_id}/pin", json={"reason": "retry"}, headers=clerk)
    assert again.json()["cleared"] is False
    with platform.db.session() as session:
        events = session.scalars(select(CardEvent).where(CardEvent.ehc_id == ehc_id, CardEvent.action == "pin_cleared"))
        [event] = list(events)
        assert event.reason == "ID card checked at window 3" and event.actor_kind == "staff"
    # The holder's access log shows the window touched their PIN.
    log = client.get("/api/v1/me/access-log", headers=resident).json()["items"]
    assert any(entry["purpose"] == "card.pin" and entry["action"] == "change" for entry in log)

    text = printed(client, clerk, ehc_id)
    problem(scan(client, his, text, PAYMENT, pin=PIN), 409, "second_factor_unavailable")
    assert set_pin(client, resident, "735164").status_code == 200  # no current PIN needed now


def test_an_sms_code_confirms_one_use(client, platform, clerk, his, holder) -> None:
    ehc_id, _ = holder
    text = printed(client, clerk, ehc_id)
    sent = client.post("/api/v1/qr/second-factor/sms", json={"code": text}, auth=his)
    assert sent.status_code == 200, sent.text
    assert sent.json()["masked_phone"] == "139****8800" and sent.json()["resend_after"] == 60
    assert timedelta(minutes=4) < datetime.fromisoformat(sent.json()["expires_at"]) - datetime.now(UTC)
    code = last_code(platform)

    problem(scan(client, his, text, PAYMENT, sms_code=code, pin=PIN), 422, "second_factor_ambiguous")
    assert problem(scan(client, his, text, PAYMENT, sms_code="000000"), 422,
                   "second_factor_invalid")["attempts_left"] == 4
    paid = scan(client, his, text, PAYMENT, sms_code=code)
    assert paid.status_code == 200, paid.text
    problem(scan(client, his, text, PAYMENT, sms_code=code), 422, "second_factor_invalid")  # single use

    # One a minute per card.
    problem(client.post("/api/v1/qr/second-factor/sms", json={"code": text}, auth=his), 429,
            "second_factor_sms_rate_limited")


def test_five_wrong_sms_codes_burn_it(client, platform, clerk, his, holder) -> None:
    ehc_id, _ = holder
    text = printed(client, clerk, ehc_id)
    assert client.post("/api/v1/qr/second-factor/sms", json={"code": text}, auth=his).status_code == 200
    code = last_code(platform)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        assert problem(scan(client, his, text, REPORTS, sms_code=wrong), 422, "second_factor_invalid")["attempts_left"] == left
    problem(scan(client, his, text, REPORTS, sms_code=code), 422, "second_factor_invalid")


def test_sms_codes_and_sign_in_codes_never_pass_for_each_other(client, platform, clerk, his, holder,
                                                               monkeypatch) -> None:
    ehc_id, _ = holder
    text = printed(client, clerk, ehc_id)
    later = datetime.now(UTC) + timedelta(seconds=61)  # past the sign-in's one code a minute
    monkeypatch.setattr(residents_service, "utcnow", lambda: later)
    # A sign-in code (the newest text on the phone) is no second factor.
    assert client.post("/api/v1/auth/resident/otp", json={"phone": PHONE}).status_code == 202
    assert client.post("/api/v1/qr/second-factor/sms", json={"code": text}, auth=his).status_code == 200
    second_factor_code = last_code(platform)
    with platform.db.session() as session:
        texts = [m.text for m in sms.outbox(session, platform.vault, phone=PHONE, limit=5)]
    assert "缴费或查看报告" in texts[0] and "登录" in texts[1]
    sign_in_code = re.search(r"\d{6}", texts[1]).group()
    while sign_in_code == second_factor_code:  # one chance in a million: the phone asks for another sign-in code
        later += timedelta(seconds=61)
        assert client.post("/api/v1/auth/resident/otp", json={"phone": PHONE}).status_code == 202
        sign_in_code = last_code(platform)
    problem(scan(client, his, text, PAYMENT, sms_code=sign_in_code), 422, "second_factor_invalid")
    # And a second-factor code signs nobody in; the sign-in code still does.
    problem(client.post("/api/v1/auth/resident/token", json={"phone": PHONE, "code": second_factor_code}),
            401, "otp_invalid")
    assert client.post("/api/v1/auth/resident/token", json={"phone": PHONE, "code": sign_in_code}).status_code == 200
    # The wrong try above used one of five attempts: the second-factor code still confirms the payment.
    assert scan(client, his, text, PAYMENT, sms_code=second_factor_code).status_code == 200


def test_sms_refusals(client, platform, clerk, his, holder) -> None:
    ehc_id, resident = holder
    drawn = client.post("/api/v1/me/qr/dynamic", headers=resident).json()["text"]
    problem(client.post("/api/v1/qr/second-factor/sms", json={"code": drawn}, auth=his), 422,
            "second_factor_not_needed")
    problem(client.post("/api/v1/qr/second-factor/sms", json={"code": "EHC1:NOT A CODE"}, auth=his), 422,
            "qr_malformed")
    no_phone = client.post("/api/v1/cards", json={
        "name": "孤老人", "document": {"type": "01", "number": resident_id(born=date(1940, 1, 1), sequence=64)},
        "sex": "1", "birth_date": "1940-01-01"}, headers=clerk).json()["ehc_id"]
    problem(client.post("/api/v1/qr/second-factor/sms", json={"code": printed(client, clerk, no_phone)}, auth=his),
            409, "second_factor_unavailable")
    text = printed(client, clerk, ehc_id)
    assert client.post(f"/api/v1/cards/{ehc_id}/report-lost", json={"reason": "lost"}, headers=clerk).status_code == 200
    problem(client.post("/api/v1/qr/second-factor/sms", json={"code": text}, auth=his), 422, "qr_revoked")


# -- the resident's page ---------------------------------------------------------------------------

def test_pin_section_on_the_me_page(client, platform, clerk, his, holder) -> None:
    """Without a browser: the section is there, the form needs its CSRF token, and a PIN set through it works."""
    ehc_id, _ = holder
    with platform.db.session() as session:
        cookie = accounts.issue_token(session, "resident", session.get(Card, ehc_id).person_id)
    client.cookies.set("ehc_resident", cookie)
    page = client.get("/me", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and 'id="pin-status"' in page.text and 'name="pin_confirm"' in page.text
    refused = client.post("/me/pin", data={"pin": "305917", "pin_confirm": "305917", "csrf_token": "forged"})
    assert refused.status_code == 403
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = client.post("/me/pin", data={"pin": "305917", "pin_confirm": "305917", "csrf_token": csrf},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("/me")
    client.cookies.clear()
    assert scan(client, his, printed(client, clerk, ehc_id), PAYMENT, pin="305917").status_code == 200


def test_a_resident_sets_and_changes_the_pin_in_chromium(live_server, sqlite_platform, chromium) -> None:
    from playwright.sync_api import expect

    zh = {f"{section}.{key}": text for section, strings in json.loads(ZH_JSON.read_text(encoding="utf-8")).items()
          if isinstance(strings, dict) for key, text in strings.items()}
    with sqlite_platform.db.session() as session:
        ctx = sqlite_platform.ctx(session, Actor.system())
        issued = cards.register(ctx, cards.Registration(name=PERSON["name"], document_type="01",
                                                        document_number=PERSON["document"]["number"], sex="2",
                                                        birth_date=date(1948, 2, 3), phone=PHONE))
        ehc_id = issued.card.ehc_id
        residents_service.request_code(ctx, PHONE)  # signed in the way residents are: a texted code
        code = re.search(r"\d{6}", sms.outbox(session, sqlite_platform.vault, phone=PHONE, limit=1)[0].text).group()
        token = residents_service.sign_in_with_code(ctx, PHONE, code).token
    host = live_server.split("//", 1)[1].split(":")[0]
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1024, "height": 1000})
    context.add_cookies([{"name": "ehc_resident", "value": token, "domain": host, "path": "/"}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server}/me?lang=zh")
    expect(page.locator("#pin-status")).to_have_text(zh["pin.status_unset"])

    # A trivial PIN: the server refuses it and says why, next to the field; nothing is stored.
    page.locator("#pin").fill("123456")
    page.locator("#pin_confirm").fill("123456")
    page.locator("#pin-submit").click()
    expect(page.locator("#pin-error")).to_contain_text(zh["pin.error_pin_too_simple"])
    expect(page.locator("#pin-status")).to_have_text(zh["pin.status_unset"])
    assert page.locator("#pin").input_value() == ""  # a PIN is never written back into the page

    page.locator("#pin").fill("305917")
    page.locator("#pin_confirm").fill("305917")
    page.locator("#pin-submit").click()
    page.wait_for_url("**/me")
    expect(page.locator("#pin-status")).to_have_text(zh["pin.status_set"])
    expect(page.get_by_text(zh["flash.pin_set"])).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "me-pin-zh.png"), full_page=True)

    # Changing it asks for the current one.
    page.locator("#current_pin").fill("111111")
    page.locator("#pin").fill("735164")
    page.locator("#pin_confirm").fill("735164")
    page.locator("#pin-submit").click()
    expect(page.locator("#current_pin-error")).to_contain_text("4")
    page.locator("#current_pin").fill("305917")
    page.locator("#pin").fill("735164")
    page.locator("#pin_confirm").fill("735164")
    page.locator("#pin-submit").click()
    page.wait_for_url("**/me")
    expect(page.get_by_text(zh["flash.pin_changed"])).to_be_visible()
    assert errors == []
    context.close()

    with sqlite_platform.db.session() as session:
        ctx = sqlite_platform.ctx(session, Actor.system())
        card = session.get(Card, ehc_id)
        factors.check_pin(ctx, card, "735164")  # raises if the page did not store this PIN
