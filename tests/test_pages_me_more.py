"""The resident's side of issue 10: where my card was used (``/me/uses``), setting the password that
``/sign-in`` offers (``/me/password``), and a way back to a card applied for without a phone
(``/card/find``: the document and the card number together). TestClient on both databases, and a
run in Chromium on a phone-sized screen in both languages."""

from __future__ import annotations

import re
from datetime import date

import httpx
from factories import ARTIFACTS, HOLDER_PERSON, card_holder, make_institution, make_staff
from residents import resident_id

from ehc.cards.models import Card
from ehc.kit.context import Actor
from ehc.qr import service as qr
from ehc.web import i18n

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _sign_in_cookie(client, headers: dict[str, str]) -> None:  # noqa: ANN001
    client.cookies.set("ehc_resident", headers["Authorization"].split()[1])


def test_my_card_uses_page_shows_each_scan_with_its_channel(client, platform, institution) -> None:  # noqa: ANN001
    ehc_id, headers = card_holder(client, platform, HOLDER_PERSON)
    _sign_in_cookie(client, headers)
    empty = client.get("/me/uses?lang=en")
    assert empty.status_code == 200 and EN["my_uses.none_title"] in empty.text
    doctor = make_staff(platform, client, "doctor", institution)
    with platform.db.session() as session:
        text = qr.issue_dynamic(platform.ctx(session, Actor.system()), session.get(Card, ehc_id)).text
    assert client.post("/api/v1/qr/verify", json={"code": text, "scene": "0101011", "channel": "0100"},
                       headers=doctor).status_code == 200
    page = client.get("/me/uses?lang=en")
    assert "Test People&#39;s Hospital" in page.text or "Test People's Hospital" in page.text
    assert EN["my_uses.scene.0101011"] in page.text and "Service window" in page.text
    zh = client.get("/me/uses?lang=zh")
    assert ZH["my_uses.scene.0101011"] in zh.text and "服务窗口" in zh.text
    assert 'href="/me/uses"' in client.get("/me?lang=en").text


def test_a_resident_sets_a_password_and_signs_in_with_it(client, platform) -> None:  # noqa: ANN001
    _, headers = card_holder(client, platform, HOLDER_PERSON)
    _sign_in_cookie(client, headers)
    form = client.get("/me/password?lang=en")
    assert form.status_code == 200 and 'id="current_password"' not in form.text
    token = _csrf(form.text)
    mismatch = client.post("/me/password?lang=en", data={"csrf_token": token, "new_password": "river stone 42",
                                                          "confirm_password": "river stone 43"})
    assert mismatch.status_code == 422 and EN["my_password.mismatch"] in mismatch.text
    short = client.post("/me/password?lang=en", data={"csrf_token": token, "new_password": "abc",
                                                       "confirm_password": "abc"})
    assert short.status_code == 422 and EN["errors.password_length"] in short.text
    done = client.post("/me/password", data={"csrf_token": token, "new_password": "river stone 42",
                                              "confirm_password": "river stone 42"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/me"
    assert client.get("/me", follow_redirects=False).status_code == 200  # this sign-in stays
    change = client.get("/me/password?lang=en")
    assert 'id="current_password"' in change.text
    wrong = client.post("/me/password?lang=en", data={"csrf_token": token, "current_password": "nope nope 1",
                                                       "new_password": "other stone 43",
                                                       "confirm_password": "other stone 43"})
    assert wrong.status_code == 401 and EN["errors.current_password_wrong"] in wrong.text

    client.cookies.clear()
    signed = client.post("/api/v1/auth/resident/token", json={"phone": HOLDER_PERSON["phone"],
                                                              "password": "river stone 42"})
    assert signed.status_code == 200, signed.text


def test_a_card_applied_for_without_a_phone_comes_back_with_document_and_card_number(client) -> None:  # noqa: ANN001
    number = resident_id(born=date(1960, 2, 2), sequence=71)
    ehc_id = client.post("/api/v1/cards", json={"name": "周老伯", "document": {"type": "01", "number": number}}).json()["ehc_id"]
    client.cookies.clear()
    none = client.get("/card?lang=en")
    assert 'href="/card/find"' in none.text
    form = client.get("/card/find?lang=en")
    token = _csrf(form.text)
    wrong = client.post("/card/find?lang=en", data={"csrf_token": token, "document_type": "01", "document_number": number,
                                                     "ehc_id": "0" * 64})
    assert wrong.status_code == 404 and EN["card_find.no_match"] in wrong.text and ehc_id not in wrong.text
    nobody = client.post("/card/find?lang=en", data={"csrf_token": token, "document_type": "01",
                                                      "document_number": resident_id(sequence=72), "ehc_id": ehc_id})
    assert nobody.status_code == 404 and nobody.text.count(EN["card_find.no_match"]) == 1
    spaced = " ".join(ehc_id[i:i + 8].lower() for i in range(0, 64, 8))
    found = client.post("/card/find", data={"csrf_token": token, "document_type": "01", "document_number": number,
                                             "ehc_id": spaced}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == "/card"
    card = client.get("/card?lang=en")
    assert ehc_id[:8] in card.text and number not in card.text


def test_resident_pages_on_a_phone_in_chromium(live_server, sqlite_platform, chromium) -> None:  # noqa: ANN001
    http = httpx.Client(base_url=live_server, timeout=30)
    institution = make_institution(sqlite_platform, "inst-me-more", uscc="12510000MB1234567X", name="成都市第一人民医院",
                                   kind="hospital", region_code="510104", level="3A")
    ehc_id, headers = card_holder(http, sqlite_platform, HOLDER_PERSON)
    doctor = make_staff(sqlite_platform, http, "doctor", institution)
    with sqlite_platform.db.session() as session:
        text = qr.issue_static(sqlite_platform.ctx(session, Actor.system()), session.get(Card, ehc_id)).text
    assert http.post("/api/v1/qr/verify", json={"code": text, "scene": "010103", "channel": "0200"},
                     headers=doctor).status_code == 200
    host = live_server.split("//")[1].split(":")[0]
    for lang, strings in (("zh", ZH), ("en", EN)):
        context = chromium.new_context(locale="zh-CN" if lang == "zh" else "en-US",
                                       viewport={"width": 360, "height": 740})
        context.add_cookies([{"name": "ehc_resident", "value": headers["Authorization"].split()[1],
                              "domain": host, "path": "/"}])
        page = context.new_page()
        page.goto(f"{live_server}/me?lang={lang}")
        for key in ("nav.me", "nav.code", "nav.uses", "nav.access_log"):  # every item on screen, none cut off
            box = page.locator(".site-nav a", has_text=strings[key]).first.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360, (lang, key, box)
        page.locator("#my-uses").click()
        page.wait_for_url("**/me/uses")
        assert strings["my_uses.scene.010103"] in page.locator("#uses").inner_text()
        assert "成都市第一人民医院" in page.locator("#uses").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"me-uses-{lang}.png"), full_page=True)
        page.goto(f"{live_server}/me/password?lang={lang}")
        if lang == "en":  # set in Chinese first: changing it needs the current one
            page.locator("#current_password").fill("river stone zh42")
        page.locator("#new_password").fill(f"river stone {lang}42")
        page.locator("#confirm_password").fill(f"river stone {lang}42")
        page.locator("form.form button[type=submit]").click()
        page.wait_for_url("**/me")
        assert strings["flash.password_set" if lang == "zh" else "flash.password_changed"] in page.content()
        context.close()
