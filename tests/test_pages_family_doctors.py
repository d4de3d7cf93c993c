"""The family-doctor pages (issue 15): the resident's "my family doctor", the team's work list and
contract desk, a contract with the follow-up and referral forms, the centre's teams and coverage;
both languages, and a Chromium run through signing, recording a follow-up and the coverage chart."""

from __future__ import annotations

import re

import httpx
from factories import ARTIFACTS, PASSWORD, card_holder, uscc
from test_family_doctors import API, RESIDENT, centre  # noqa: F401 - the centre fixture

from ehc.accounts import service as accounts
from ehc.family_doctors import service as fd
from ehc.institutions import service as institutions
from ehc.kit.context import Actor
from ehc.web import i18n

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")


def _cookie_client(client, headers: dict, kind: str):  # noqa: ANN001, ANN202
    client.cookies.clear()
    client.cookies.set(f"ehc_{kind}", headers["Authorization"].removeprefix("Bearer "))
    return client


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_resident_signs_and_sees_the_contract_in_both_languages(client, platform, centre) -> None:  # noqa: ANN001, F811
    _, me = card_holder(client, platform, RESIDENT)
    _cookie_client(client, me, "resident")
    page = client.get("/me/family-doctor?lang=en")
    assert page.status_code == 200 and EN["family_doctor.me.none"] in page.text and "王医生团队" in page.text
    answer = client.post("/me/family-doctor/sign", data={"team_id": centre.team, "package_ids": [centre.basic],
                                                         "csrf_token": _csrf(page.text)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    shown = client.get("/me/family-doctor?lang=zh")
    assert ZH["flash.family_doctor_signed"] in shown.text and ZH["family_doctor.status.active"] in shown.text
    assert "基本公共卫生服务包" in shown.text and ZH["family_doctor.services_title"] in shown.text
    again = client.post("/me/family-doctor/sign", data={"team_id": centre.other_team, "csrf_token": _csrf(shown.text)})
    assert again.status_code == 409 and ZH["family_doctor.errors.contract_exists"] in again.text
    contract_id = re.search(r'data-contract="([0-9a-f]+)"', shown.text).group(1)
    ended = client.post(f"/me/family-doctor/{contract_id}/terminate", data={"reason": "搬家", "csrf_token": _csrf(shown.text)},
                        follow_redirects=False)
    assert ended.status_code == 303


def test_staff_work_list_desk_contract_and_centre_pages(client, platform, centre) -> None:  # noqa: ANN001, F811
    ehc_id, _ = card_holder(client, platform, RESIDENT)
    _cookie_client(client, centre.headers["clerk"], "staff")
    desk = client.get("/staff/family-doctors?lang=en")
    assert desk.status_code == 200 and EN["family_doctor.staff.desk_title"] in desk.text
    signed = client.post("/staff/family-doctors/sign", data={"team_id": centre.team, "ehc_id": ehc_id,
                                                             "package_ids": [centre.basic],
                                                             "csrf_token": _csrf(desk.text)}, follow_redirects=False)
    assert signed.status_code == 303, signed.text
    contract_url = signed.headers["location"]
    found = client.get(f"/staff/family-doctors?ehc_id={ehc_id}&lang=en")
    assert RESIDENT["name"] in found.text

    _cookie_client(client, centre.headers["nurse"], "staff")
    work = client.get("/staff/family-doctors?lang=zh")
    assert work.status_code == 200 and "王医生团队" in work.text and RESIDENT["name"] in work.text
    outreach = client.get(f"/staff/family-doctors?outreach={centre.team}&lang=en")
    table = outreach.text.split('class="table fd-outreach"')[1].split("</table>")[0]
    assert EN["family_doctor.staff.outreach"] in outreach.text and "<tbody></tbody>" in table  # all contracted
    page = client.get(contract_url + "?lang=en")
    assert page.status_code == 200 and EN["family_doctor.record_title"] in page.text
    recorded = client.post(contract_url + "/services", data={"service_code": "health_check", "systolic": "142",
                                                             "diastolic": "88", "glucose": "6.1", "weight": "58.5",
                                                             "notes": "walks daily", "csrf_token": _csrf(page.text)},
                           follow_redirects=False)
    assert recorded.status_code == 303, recorded.text
    after = client.get(contract_url + "?lang=en")
    assert "142/88" in after.text and "6.1" in after.text and "walks daily" in after.text
    bad = client.post(contract_url + "/services", data={"service_code": "health_check", "csrf_token": _csrf(after.text)})
    assert bad.status_code == 409 and EN["family_doctor.errors.service_count_used"] in bad.text

    _cookie_client(client, centre.headers["admin"], "staff")
    centre_page = client.get("/staff/family-doctors/centre?lang=zh")
    assert centre_page.status_code == 200 and ZH["family_doctor.centre.coverage"] in centre_page.text
    assert 'class="fd-bar"' in centre_page.text
    made = client.post("/staff/family-doctors/teams", data={"name": "赵医生团队", "lead_staff_id": centre.staff["lead"],
                                                           "areas": "510104 510105",
                                                           "csrf_token": _csrf(centre_page.text)},
                       follow_redirects=False)
    assert made.status_code == 303
    refused = client.post("/staff/family-doctors/teams", data={"name": "x", "lead_staff_id": centre.staff["lead"],
                                                              "areas": "99", "csrf_token": _csrf(centre_page.text)})
    assert refused.status_code == 422 and ZH["family_doctor.errors.area_invalid"] in refused.text


def _browser_world(platform, live_server: str) -> dict:  # noqa: ANN001
    """A centre with a team and packages, a resident with a card, and sign-in tokens, on the live platform."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        centre_ = institutions.create_institution(session, uscc=uscc("510104", 21), name="锦江区社区卫生服务中心",
                                                  kind="community_centre", region_code="510104")
        staff = {name: accounts.create_staff(ctx, username=f"fdb.{name}", password=PASSWORD, role=role,
                                             institution_id=centre_.id, display_name=display).id
                 for name, role, display in (("admin", "institution_admin", "管理员"), ("lead", "family_doctor", "王医生"))}
        team = fd.create_team(ctx, centre_.id, name="王医生团队", lead_staff_id=staff["lead"], areas=["510104"])
        fd.create_package(ctx, code="basic", kind="basic", name="基本公共卫生服务包", institution_id=centre_.id,
                          services=[{"code": "health_check", "kind": "check_up", "name": "年度体检", "yearly_count": 1}])
        fd.create_package(ctx, code="elderly", kind="elderly", name="老年人服务包", institution_id=centre_.id,
                          eligibility={"min_age": 65}, price_resident_fen=1200,
                          services=[{"code": "elder_follow_up", "kind": "follow_up", "name": "老年人随访",
                                     "yearly_count": 4}])
        tokens = {name: accounts.issue_token(session, "staff", staff_id) for name, staff_id in staff.items()}
        team_id = team.id
    with httpx.Client(base_url=live_server, timeout=30) as http:  # the resident applies and signs in by text
        tokens["resident"] = card_holder(http, platform, RESIDENT)[1]["Authorization"].removeprefix("Bearer ")
    return {"team": team_id, "tokens": tokens}


def test_family_doctor_pages_in_chromium(live_server, sqlite_platform, chromium) -> None:  # noqa: ANN001
    from playwright.sync_api import expect  # heavy: only the browser tests need Playwright

    world = _browser_world(sqlite_platform, live_server)
    host = live_server.split("//")[1].split(":")[0]
    errors: list[str] = []

    def context(who: str, locale: str):  # noqa: ANN202
        made = chromium.new_context(locale=locale, viewport={"width": 1100, "height": 900})
        name = "ehc_resident" if who == "resident" else "ehc_staff"
        made.add_cookies([{"name": name, "value": world["tokens"][who], "domain": host, "path": "/"}])
        page = made.new_page()
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        return page

    # The resident (Chinese) signs with the team: the basic package and the elderly one (65+).
    page = context("resident", "zh-CN")
    page.goto(f"{live_server}/me/family-doctor?lang=zh")
    expect(page.locator("h1")).to_have_text(ZH["family_doctor.me.title"])
    page.get_by_label(re.compile("老年人服务包")).check()
    page.get_by_role("button", name=ZH["family_doctor.me.sign"], exact=True).click()
    expect(page.locator(".notice-flash")).to_contain_text(ZH["flash.family_doctor_signed"])
    expect(page.locator(".fd-progress tbody tr")).to_have_count(2)
    page.screenshot(path=str(ARTIFACTS / "family-doctor-me-zh.png"), full_page=True)

    # The lead doctor (English) finds the contract on the work list and records the check-up.
    page = context("lead", "en")
    page.goto(f"{live_server}/staff/family-doctors?lang=en")
    page.get_by_role("link", name=RESIDENT["name"]).first.click()
    expect(page.locator("h1")).to_contain_text(EN["family_doctor.contract_title"])
    page.get_by_label(EN["family_doctor.service"]).select_option("health_check")
    page.get_by_label(EN["family_doctor.systolic"]).fill("148")
    page.get_by_label(EN["family_doctor.diastolic"]).fill("92")
    page.get_by_label(EN["family_doctor.weight"]).fill("61.2")
    page.get_by_role("button", name=EN["family_doctor.record"], exact=True).click()
    expect(page.locator(".notice-flash")).to_contain_text(EN["flash.family_doctor_recorded"])
    expect(page.locator("table.fd-done")).to_contain_text("148/92")
    page.screenshot(path=str(ARTIFACTS / "family-doctor-contract-en.png"), full_page=True)

    # The centre's admin sees the coverage table and its chart.
    page = context("admin", "zh-CN")
    page.goto(f"{live_server}/staff/family-doctors/centre?lang=zh")
    expect(page.locator("table.fd-coverage")).to_contain_text("王医生团队")
    bar = page.locator("rect.fd-bar").first
    assert float(bar.get_attribute("width")) == 300.0  # the one resident of the area is contracted
    page.screenshot(path=str(ARTIFACTS / "family-doctor-centre-zh.png"), full_page=True)
    assert not errors, errors
