"""Appointment pages: the resident's (find a doctor, pick a period, confirm, my appointments, cancel)
and the staff's (schedule with suspension preview, the desk with check-in by typed code and same-day
registration), in English and 简体中文. TestClient checks run on SQLite and PostgreSQL; the
scenarios run in Chromium against a live server, with screenshots in test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from appointments_world import SHAPE, add_department, later_today
from argon2 import PasswordHasher
from factories import ARTIFACTS, card_holder, make_institution, make_staff, person

from ehc.accounts import service as accounts
from ehc.kit.clock import china_today
from ehc.kit.context import Actor
from ehc.web import i18n

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")
RESIDENT = person("林小雨", __import__("datetime").date(1990, 3, 3), 61, False, phone="13900000555")


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_pages_in_both_languages(client, platform, institution):
    add_department(platform, institution)
    admin = make_staff(platform, client, "institution_admin", institution)
    clerk = make_staff(platform, client, "window_clerk", institution)
    day = (china_today() + timedelta(days=1)).isoformat()
    made = client.post("/api/v1/appointments/sessions", headers=admin,
                       json={**SHAPE, "department_code": "0300", "day": day})
    session_id = made.json()["id"]
    ehc_id, me = card_holder(client, platform, RESIDENT)
    token = me["Authorization"].removeprefix("Bearer ")
    for lang, words in (("en", EN), ("zh", ZH)):
        client.cookies.clear()
        client.cookies.set("ehc_resident", token)
        found = client.get(f"/me/appointments/find?department_code=0300&day={day}&lang={lang}")
        assert found.status_code == 200 and words["appointments.find_title"] in found.text
        assert f"/me/appointments/session/{session_id}" in found.text
        picked = client.get(f"/me/appointments/session/{session_id}?lang={lang}")
        assert picked.status_code == 200 and words["appointments.book"] in picked.text
    period = re.search(r'name="period_id" value="(\d+)"', picked.text).group(1)
    booked = client.post("/me/appointments/book", data={"period_id": period, "session_id": session_id,
                                                         "csrf_token": _csrf(picked.text)}, follow_redirects=False)
    assert booked.status_code == 303, booked.text
    page = client.get(booked.headers["location"])
    reference = re.search(r'id="reference">([A-Z0-9]+)<', page.text).group(1)
    assert ZH["appointments.confirm"] in page.text
    done = client.post(f"/me/appointments/{reference}/confirm", data={"csrf_token": _csrf(page.text)})
    assert done.status_code == 200 and ZH["appointments.status.booked"] in done.text
    assert reference in client.get("/me/appointments").text
    for headers, path, key in ((admin, "/staff/appointments/schedule", "appointments.schedule_title"),
                               (admin, f"/staff/appointments/schedule/{session_id}/suspend", "appointments.suspend_title"),
                               (clerk, "/staff/appointments", "appointments.desk_title")):
        client.cookies.clear()
        client.cookies.set("ehc_staff", headers["Authorization"].removeprefix("Bearer "))
        for lang, words in (("en", EN), ("zh", ZH)):
            shown = client.get(f"{path}?lang={lang}")
            assert shown.status_code == 200 and words[key] in shown.text, (path, lang)
    client.cookies.clear()
    client.cookies.set("ehc_staff", admin["Authorization"].removeprefix("Bearer "))
    assert reference in client.get(f"/staff/appointments/schedule/{session_id}/suspend").text  # what it would cancel
    client.cookies.clear()
    client.cookies.set("ehc_staff", clerk["Authorization"].removeprefix("Bearer "))
    assert client.get("/staff/appointments/schedule").status_code == 403  # a clerk does not schedule
    assert ehc_id


def _staff_token(http: httpx.Client, platform, username: str, role: str, institution: str) -> str:  # noqa: ANN001
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username=username,
                              password="correct horse battery", role=role, institution_id=institution)
    return http.post("/api/v1/auth/staff/token", json={"username": username,
                                                       "password": "correct horse battery"}).json()["access_token"]


def test_resident_and_staff_scenarios_in_chromium(live_server, sqlite_platform, chromium):
    soon = later_today(60)
    if soon is None:
        pytest.skip("too close to midnight in China for a session later today")
    day, start, end = soon
    platform = sqlite_platform
    institution = make_institution(platform, "inst-appt-pages", uscc="12510000MB1234567X", name="锦江区人民医院",
                                   region_code="510104", level="3A")
    add_department(platform, institution)
    http = httpx.Client(base_url=live_server, timeout=30)
    admin = _staff_token(http, platform, "li.scheduler", "institution_admin", institution)
    clerk = _staff_token(http, platform, "wang.clerk", "window_clerk", institution)
    ehc_id, me = card_holder(http, platform, RESIDENT)
    host = live_server.split("//")[1].split(":")[0]

    # The scheduler publishes a session for later today in the schedule page (English).
    context = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    context.add_cookies([{"name": "ehc_staff", "value": admin, "domain": host, "path": "/"}])
    page = context.new_page()
    page.goto(f"{live_server}/staff?lang=en")
    page.get_by_role("link", name=EN["nav.staff_schedule"]).click()
    page.wait_for_url("**/staff/appointments/schedule")
    page.locator("#session-day").fill(day.isoformat())
    page.locator("#session-start").fill(start)
    page.locator("#session-end").fill(end)
    page.locator("#session-fee").fill("50")
    page.locator("#session-doctor").fill("李医生")
    page.locator("#publish-session").click()
    page.wait_for_url("**/staff/appointments/schedule")
    assert "李医生" in page.locator("#week").inner_text()
    page.screenshot(path=str(ARTIFACTS / "appointments-schedule-en.png"), full_page=True)
    context.close()

    # The resident finds the doctor, picks a period and confirms (简体中文).
    context = chromium.new_context(locale="zh-CN", viewport={"width": 414, "height": 900})
    context.add_cookies([{"name": "ehc_resident", "value": me["Authorization"].removeprefix("Bearer "),
                          "domain": host, "path": "/"}])
    page = context.new_page()
    page.goto(f"{live_server}/me?lang=zh")
    page.get_by_role("link", name=ZH["nav.appointments"]).first.click()
    page.wait_for_url("**/me/appointments")
    page.get_by_role("link", name=ZH["appointments.find_title"]).click()
    page.locator("#department_code").select_option("0300")
    page.locator("#day").fill(day.isoformat())
    page.get_by_role("button", name=ZH["appointments.search"]).click()
    page.locator("#sessions a").first.click()
    page.wait_for_url("**/me/appointments/session/**")
    page.screenshot(path=str(ARTIFACTS / "appointments-pick-zh.png"), full_page=True)
    page.locator("#periods button").first.click()
    page.wait_for_url(re.compile(r".*/me/appointments/A[0-9A-Z]+$"))
    reference = page.locator("#reference").inner_text()
    page.locator("#confirm").click()
    page.wait_for_url(f"**/me/appointments/{reference}")
    assert page.locator("#status").inner_text() == ZH["appointments.status.booked"]
    page.screenshot(path=str(ARTIFACTS / "appointments-booked-zh.png"), full_page=True)
    code = page.request.post(f"{live_server}/api/v1/me/qr/dynamic").json()["text"]
    context.close()

    # At the department the clerk types the code (a scanner is a keyboard): the booking has arrived.
    context = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    context.add_cookies([{"name": "ehc_staff", "value": clerk, "domain": host, "path": "/"}])
    page = context.new_page()
    page.goto(f"{live_server}/staff/appointments?lang=en&department_code=0300")
    assert reference in page.locator("#day-list").inner_text()
    page.locator("#code").fill(code)
    page.get_by_role("button", name=EN["appointments.check_in"]).click()
    page.wait_for_url("**/staff/appointments?department_code=0300")
    assert reference in page.locator(".notice-flash").inner_text()
    assert EN["appointments.status.arrived"] in page.locator("#day-list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "appointments-desk-en.png"), full_page=True)
    context.close()
    assert ehc_id
