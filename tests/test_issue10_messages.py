"""What confused a newcomer (issue 10, items 7 and 9), each through the surface that showed it: the
15-digit ID message, no "沙箱" for residents, English plurals by CLDR rules, the staff footer, the print
field's styling, long names inside the card picture, and a QR SVG that is black on white."""

from __future__ import annotations

import re

from factories import ARTIFACTS, HOLDER_PERSON, card_holder, make_staff

from ehc.qr.codec import render_svg
from ehc.web import i18n

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")


def test_a_15_digit_id_number_is_refused_saying_it_is_not_converted(client) -> None:  # noqa: ANN001
    old = "510104850601123"
    answer = client.post("/api/v1/cards", json={"name": "王小明", "document": {"type": "01", "number": old}})
    (error,) = answer.json()["errors"]
    assert answer.status_code == 422 and error["code"] == "resident_id_first_generation"
    assert "not converted" in error["message"] and "18-digit" in error["message"]
    page = client.get("/apply?lang=zh")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = client.post("/apply?lang=zh", data={"csrf_token": token, "name": "王小明", "document_type": "01",
                                               "document_number": old})
    assert form.status_code == 422 and ZH["errors.resident_id_first_generation"] in form.text


def test_residents_never_see_the_word_sandbox(client, platform) -> None:  # noqa: ANN001
    _, headers = card_holder(client, platform, HOLDER_PERSON)
    client.cookies.set("ehc_resident", headers["Authorization"].split()[1])
    for lang in ("zh", "en"):
        shown = re.sub(r"<[^>]+>", " ", client.get(f"/me/code?lang={lang}").text)  # what the page says
        assert "沙箱" not in shown and "sandbox" not in shown.lower(), lang


def test_durations_follow_each_languages_plural_rules() -> None:
    en, zh = i18n.translator("en"), i18n.translator("zh")
    assert en.duration(60) == "1 minute" and en.duration(120) == "2 minutes"
    assert en.duration(1) == "1 second" and en.duration(7200) == "2 hours"
    assert zh.duration(60) == "1 分钟" and zh.duration(120) == "2 分钟"


def test_staff_pages_carry_a_staff_footer_and_a_styled_print_field(client, platform, institution) -> None:  # noqa: ANN001
    client.cookies.set("ehc_staff", make_staff(platform, client, "window_clerk", institution)["Authorization"].split()[1])
    page = client.get("/staff/print?lang=en").text
    assert EN["site.footer_staff"] in page and EN["site.footer_authority"] not in page
    assert re.search(r'<input id="ehc_id"[^>]*class="input code"', page)


def test_the_svg_code_is_black_on_an_opaque_white_background() -> None:
    svg = render_svg("EHC1:TEST").data.decode()
    size = re.search(r'width="(\d+)"', svg).group(1)
    modules = int(size) // 8
    assert f'<path fill="#fff" d="M0 0h{modules}v{modules}h-{modules}z"/>' in svg  # the whole symbol, quiet zone too
    assert 'stroke="#000"' in svg


def test_a_long_name_stays_inside_the_card_picture_in_chromium(live_server, sqlite_platform, chromium) -> None:  # noqa: ANN001
    import httpx  # the live-server client; only this test needs it

    long_name = "阿卜杜热合曼·买买提艾力·阿不都克力木·艾尔肯江"
    person = {**HOLDER_PERSON, "name": long_name, "phone": "13912399999"}
    http = httpx.Client(base_url=live_server, timeout=30)
    _, headers = card_holder(http, sqlite_platform, person)
    context = chromium.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
    host = live_server.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "ehc_resident", "value": headers["Authorization"].split()[1], "domain": host,
                          "path": "/"}])
    page = context.new_page()
    page.goto(f"{live_server}/me")
    name = page.locator(".health-card-name").first
    card = page.locator(".health-card").first.bounding_box()
    box = name.bounding_box()
    assert box["x"] + box["width"] <= card["x"] + card["width"] + 0.5
    assert name.evaluate("e => e.scrollWidth <= e.clientWidth")
    page.screenshot(path=str(ARTIFACTS / "long-name-zh.png"), full_page=True)
    context.close()
