"""The resident web pages: language, the apply form, CSRF, the card cookie, and a real browser run.

The TestClient tests run on SQLite and PostgreSQL (the ``client`` fixture); the browser test runs
once, against a live uvicorn server on SQLite (tests/browser.py).
"""

from __future__ import annotations

import html
import re
import string
import time
from datetime import date

from factories import ARTIFACTS
from residents import resident_id
from sqlalchemy import func, select

from ehc.cards import service
from ehc.cards.models import Card, CardStatus
from ehc.identity.service import DocumentType
from ehc.web import i18n, security

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")
NUMBER = resident_id(born=date(1985, 6, 1), sequence=21)


def bad_checksum(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


def csrf(client, lang: str = "zh") -> str:  # noqa: ANN001
    page = client.get(f"/apply?lang={lang}")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def form(token: str, **over: str) -> dict[str, str]:
    data = {
        "csrf_token": token,
        "name": "王小明",
        "document_type": "01",
        "document_number": NUMBER,
        "sex": "1",
        "birth_date": "1985-06-01",
        "phone": "13912345678",
        "address": "成都市武侯区人民南路四段1号",
    }
    data.update(over)
    return data


def element_text(page: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no element #{element_id}"
    return html.unescape(re.sub(r"<[^>]+>|\s+", " ", match.group(2))).strip()


def input_tag(page: str, element_id: str) -> str:
    match = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{element_id}"[^>]*>', page, re.S)
    assert match, f"no input #{element_id}"
    return match.group(0)


def cards(platform) -> int:  # noqa: ANN001
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(Card))


# -- language -------------------------------------------------------------------------------------

def test_apply_page_in_both_languages(client):
    zh = client.get("/apply?lang=zh")
    assert zh.status_code == 200 and zh.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in zh.text and ZH["apply.title"] in zh.text and "居民身份证" in zh.text
    assert 'lang="en" hreflang="en">English</a>' in zh.text  # the switch, labelled in its own language
    assert "lang=zh" in zh.headers["set-cookie"]

    en = client.get("/apply?lang=en")
    assert '<html lang="en">' in en.text and EN["apply.title"] in en.text and ">Passport</option>" in en.text
    assert ZH["apply.title"] not in en.text
    assert '<html lang="en">' in client.get("/apply").text  # remembered in the cookie

    client.cookies.clear()
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="zh-CN">' in client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).text
    assert '<html lang="zh-CN">' in client.get("/").text  # nothing to go on: Chinese
    assert '<html lang="en">' in client.get("/?lang=EN").text
    client.cookies.clear()
    assert '<html lang="zh-CN">' in client.get("/?lang=xx", headers={"Accept-Language": "zh-TW"}).text


def test_accept_language_ranking():
    assert i18n.from_accept_language("en;q=0.5, zh-CN;q=0.8") == "zh"
    assert i18n.from_accept_language("zh;q=0, en") == "en"
    assert i18n.from_accept_language("fr, de;q=0.9") is None
    assert i18n.from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert i18n.from_accept_language("q=;;,,") is None


def test_locales_have_the_same_keys_and_placeholders():
    assert set(EN) == set(ZH)

    def fields(text) -> set[str]:  # noqa: ANN001
        return {f for _, f, _, _ in string.Formatter().parse(text) if f} if isinstance(text, str) else set()

    # Same placeholders, except a date's, which each language orders and spells its own way.
    differ = {k for k in EN if fields(EN[k]) != fields(ZH[k])}
    assert differ == {"format.date"}
    assert fields(EN["format.date"]) | fields(ZH["format.date"]) <= {"year", "month", "day", "month_name"}
    for status in CardStatus:
        assert f"status.{status.value}" in EN
    for kind in DocumentType:
        assert f"document_formats.{kind.value}" in EN
    # Every code the apply form can meet has its own message, not the service's English detail.
    for code in ("name_invalid", "document_type_unknown", "document_number_malformed", "document_checksum_mismatch",
                 "document_birth_date_invalid", "phone_malformed", "region_code_invalid", "sex_invalid",
                 "sex_mismatch", "birth_date_malformed", "birth_date_mismatch", "birth_date_in_future",
                 "birth_date_required", "birth_date_out_of_range", "document_registered_other_name", "too_long",
                 "csrf_failed", "internal_error"):
        assert f"errors.{code}" in ZH, code


# -- the apply form -------------------------------------------------------------------------------

def test_bad_id_number_rerenders_with_localized_field_messages_and_keeps_values(client, platform):
    token = csrf(client, "zh")
    answer = client.post("/apply", data=form(token, document_number=bad_checksum(NUMBER), phone="12345"),
                         follow_redirects=False)
    assert answer.status_code == 422 and '<html lang="zh-CN">' in answer.text
    page = answer.text
    assert element_text(page, "document_number-error").endswith(ZH["errors.document_checksum_mismatch"])
    assert element_text(page, "phone-error").endswith(ZH["errors.phone_malformed"])
    number_input = input_tag(page, "document_number")
    assert 'aria-invalid="true"' in number_input and "document_number-error" in number_input
    assert f'value="{bad_checksum(NUMBER)}"' in number_input and 'value="12345"' in input_tag(page, "phone")
    assert 'value="王小明"' in input_tag(page, "name") and 'value="1" required checked' in page
    assert "aria-invalid" not in input_tag(page, "name")
    assert ZH["apply.error_summary_title"] in page
    assert security.CARD_COOKIE not in answer.headers.get("set-cookie", "") and cards(platform) == 0

    client.cookies.set("lang", "en")
    english = client.post("/apply", data=form(token, document_number="12345"))
    assert english.status_code == 422 and '<html lang="en">' in english.text
    assert element_text(english.text, "document_number-error").endswith(
        EN["errors.document_number_malformed"].format(format=EN["document_formats.01"]))
    # What the API's schema refuses (a browser's date picker never sends this) is caught first.
    not_a_date = client.post("/apply", data=form(token, birth_date="01/06/1985"))
    assert element_text(not_a_date.text, "birth_date-error").endswith(EN["errors.birth_date_malformed"])


def test_stated_details_must_match_the_document_and_nothing_is_half_written(client, platform):
    token = csrf(client)
    answer = client.post("/apply", data=form(token, birth_date="1985-06-02", sex="2"))
    assert answer.status_code == 422
    assert element_text(answer.text, "birth_date-error").endswith(ZH["errors.birth_date_mismatch"])
    assert element_text(answer.text, "sex-error").endswith(ZH["errors.sex_mismatch"])
    assert cards(platform) == 0


def test_form_without_matching_csrf_token_is_refused(client, platform):
    client.get("/apply?lang=zh")
    missing = client.post("/apply", data=form(""), follow_redirects=False)
    assert missing.status_code == 403 and ZH["errors.csrf_failed"] in missing.text
    assert missing.headers["content-type"].startswith("text/html")

    forged = client.post("/apply", data=form("x" * 20 + "." + "0" * 64), follow_redirects=False)
    assert forged.status_code == 403

    # A token the attacker planted in both places still needs the platform's MAC.
    client.cookies.set(security.CSRF_COOKIE, "planted")
    planted = client.post("/apply", data=form("planted"), follow_redirects=False)
    assert planted.status_code == 403 and cards(platform) == 0


def test_successful_application_redirects_to_the_masked_card(client, platform):
    token = csrf(client)
    answer = client.post("/apply", data=form(token), follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/card"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(security.CARD_COOKIE + "="))
    attributes = cookie.lower()
    assert "httponly" in attributes and "samesite=lax" in attributes and "max-age=1800" in attributes
    with platform.db.session() as session:
        ehc_id = session.scalar(select(Card.ehc_id))
    assert cookie.split(";")[0].split("=", 1)[1].startswith(ehc_id + ".")

    card = client.get("/card")
    assert card.status_code == 200 and card.headers["cache-control"] == "no-store"
    page = card.text
    assert "王*明" in page and ZH["card.notice_created"] in page and ZH["status.normal"] in page
    assert " ".join(ehc_id[i:i + 8] for i in range(0, 64, 8)) in re.sub(r"<[^>]+>", "", page)
    assert f"{NUMBER[:3]}{'*' * 11}{NUMBER[-4:]}" in page
    for secret in ("王小明", NUMBER, NUMBER[6:14], "13912345678", "人民南路"):
        assert secret not in page, secret

    # The notice is shown once; applying again with the same document shows the same card.
    assert ZH["card.notice_created"] not in client.get("/card").text
    again = client.post("/apply", data=form(csrf(client, "en")))
    assert again.status_code == 200 and str(again.url).endswith("/card")
    assert EN["card.notice_existing"] in again.text and f'data-ehc-id="{ehc_id}"' in again.text
    assert cards(platform) == 1

    other_name = client.post("/apply", data=form(csrf(client, "zh"), name="王大明"))
    assert other_name.status_code == 409 and ZH["errors.document_registered_other_name"] in other_name.text
    assert 'value="王大明"' in other_name.text and "data-ehc-id" not in other_name.text


def test_card_page_without_a_valid_cookie_shows_no_card(client, platform):
    def shows_card() -> bool:
        page = client.get("/card?lang=zh")
        assert page.status_code == 200
        return "data-ehc-id" in page.text

    assert not shows_card() and ZH["card.none_title"] in client.get("/card").text
    client.post("/apply", data=form(csrf(client)))
    assert shows_card()
    good = client.cookies.get(security.CARD_COOKIE)
    ehc_id, expiry, mac = good.split(".")
    other = "A" * 64
    forged = [
        f"{other}.{expiry}.{mac}",  # someone else's card with my MAC
        f"{ehc_id}.{int(expiry) + 3600}.{mac}",  # stretched expiry
        f"{ehc_id}.{expiry}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",  # one bit of MAC
        f"{ehc_id}.{expiry}",
        "garbage",
        security.card_cookie_value(platform.vault, ehc_id, now=time.time() - 3600),  # expired
        security.card_cookie_value(platform.vault, other),  # authentic, but no such card
    ]
    for value in forged:
        client.cookies.clear()
        client.cookies.set(security.CARD_COOKIE, value)
        assert not shows_card(), value


def test_page_failures_are_pages_without_a_trace(client, platform, monkeypatch):
    def boom(ctx, application):  # noqa: ANN001, ANN202
        raise RuntimeError("secret internals /srv/ehc/cards/service.py line 42")

    monkeypatch.setattr(service, "register", boom)
    answer = client.post("/apply", data=form(csrf(client)))
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("text/html")
    assert ZH["errors.internal_error"] in answer.text and answer.headers["x-request-id"] in answer.text
    assert "Traceback" not in answer.text and "secret internals" not in answer.text
    assert cards(platform) == 0

    too_long = client.post("/apply", data=form(csrf(client), address="路" * 201))
    assert too_long.status_code == 422
    assert element_text(too_long.text, "address-error").endswith(ZH["errors.too_long"].format(max=200))


# -- a real browser -------------------------------------------------------------------------------

def test_apply_and_see_the_card_in_chromium(live_server, chromium):
    from playwright.sync_api import expect

    good = resident_id(born=date(1990, 3, 7), sequence=12)
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1024, "height": 900})
    page = context.new_page()
    console_errors: list[str] = []  # a script error or a Content-Security-Policy violation
    page.on("console", lambda message: message.type == "error" and not message.text.startswith(
        "Failed to load resource: the server responded with a status of 422") and console_errors.append(message.text))
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.goto(f"{live_server}/?lang=zh")
    page.screenshot(path=str(ARTIFACTS / "home-zh.png"), full_page=True)
    page.get_by_role("link", name=ZH["home.cta"]).click()
    page.wait_for_url("**/apply")
    assert page.locator("html").get_attribute("lang") == "zh-CN"

    page.get_by_label(ZH["apply.name.label"], exact=True).fill("张小明")
    page.get_by_label(ZH["sex.1"], exact=True).check()
    page.get_by_label(ZH["apply.birth_date.label"], exact=True).fill("1990-03-07")
    page.get_by_label(ZH["apply.document_type.label"], exact=True).select_option("01")
    page.get_by_label(ZH["apply.document_number.label"], exact=True).fill(bad_checksum(good))
    phone = page.locator("#phone")
    phone.fill("12345")  # the browser's own check stops this before the server sees it
    assert phone.evaluate("el => el.validity.patternMismatch") is True
    phone.fill("139 1234 5678")
    assert phone.evaluate("el => el.validity.valid") is True
    page.get_by_role("button", name=ZH["apply.submit"]).click()

    error = page.locator("#document_number-error")
    expect(error).to_contain_text(ZH["errors.document_checksum_mismatch"])
    number = page.locator("#document_number")
    expect(number).to_have_attribute("aria-invalid", "true")
    assert "document_number-error" in number.get_attribute("aria-describedby")
    error_box, input_box = error.bounding_box(), number.bounding_box()
    assert 0 <= input_box["y"] - (error_box["y"] + error_box["height"]) < 24  # right above its field
    assert number.input_value() == bad_checksum(good) and page.locator("#name").input_value() == "张小明"
    assert page.evaluate("document.activeElement.id") == "error-summary"
    page.screenshot(path=str(ARTIFACTS / "apply-errors-zh.png"), full_page=True)

    number.fill(good)
    page.get_by_role("button", name=ZH["apply.submit"]).click()
    page.wait_for_url("**/card")
    expect(page.locator(".health-card-name")).to_have_text("张*明")
    expect(page.locator(".notice-created")).to_contain_text(ZH["card.notice_created"])
    ehc_id = page.locator(".ehc-id").get_attribute("data-ehc-id")
    assert len(ehc_id) == 64 and page.locator(".ehc-id-group").count() == 8
    assert good not in page.content() and "张小明" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "card-zh.png"), full_page=True)

    page.get_by_role("link", name="English").click()
    page.wait_for_url("**/card?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    expect(page.locator("h1")).to_have_text(EN["card.title"])
    expect(page.locator(".health-card-facts")).to_contain_text(EN["card.issued"])
    expect(page.locator(".badge")).to_have_text(EN["status.normal"])
    expect(page.locator(".health-card-facts")).to_contain_text(EN["sex.1"])
    page.screenshot(path=str(ARTIFACTS / "card-en.png"), full_page=True)

    # On a phone: no sideways scrolling; the language is remembered across pages.
    page.set_viewport_size({"width": 375, "height": 812})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    card_box = page.locator(".health-card").bounding_box()
    for group in page.locator(".ehc-id-group").all():  # the card clips: check every group is inside it
        box = group.bounding_box()
        assert box["x"] >= card_box["x"] and box["x"] + box["width"] <= card_box["x"] + card_box["width"] - 8
    page.screenshot(path=str(ARTIFACTS / "card-mobile-en.png"), full_page=True)
    page.goto(f"{live_server}/apply")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(ARTIFACTS / "apply-mobile-en.png"), full_page=True)
    context.close()
    assert console_errors == []

    # A new English browser with no cookie gets English from its Accept-Language.
    english = chromium.new_context(locale="en-US")
    fresh = english.new_page()
    fresh.goto(f"{live_server}/")
    assert fresh.locator("html").get_attribute("lang") == "en"
    fresh.get_by_role("link", name=EN["nav.card"]).click()  # no cookie in this browser: no card
    expect(fresh.locator("h1")).to_have_text(EN["card.none_title"])
    assert fresh.locator(".health-card").count() == 0
    fresh.screenshot(path=str(ARTIFACTS / "card-none-en.png"), full_page=True)
    english.close()
