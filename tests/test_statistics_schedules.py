"""Scheduled statistics reports: an operator schedules the daily card-use report or an indicator's
table for their region, daily or weekly, as CSV or Parquet; a runner (the refresher, ``ehc stats
run-schedules``, "Run now") makes each due day's file once, under the data directory, and records it;
the operator lists and downloads only their region's files; every run and download is audited. On
SQLite and PostgreSQL; the page in Chromium."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from factories import make_institution, make_staff, uscc
from sqlalchemy import func, select
from test_statistics import CHENGDU_HOSPITAL, DAY, DEYANG_HOSPITAL, SHENZHEN_HOSPITAL, Data

from ehc.audit.models import AuditEvent
from ehc.kit.context import Actor
from ehc.statistics import service as stats
from ehc.statistics.models import ReportDelivery, ReportSchedule

SCHEDULES = "/api/v1/statistics/schedules"


def china_moment(day: date, hour: int = 1) -> datetime:
    """``hour`` o'clock China time on ``day``, in UTC (the runner's injected now)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


@pytest.fixture
def data(platform, institution) -> Data:  # noqa: ANN001
    make_institution(platform, DEYANG_HOSPITAL, uscc=uscc("510600", 2), name="Deyang Hospital", region_code="510603")
    make_institution(platform, SHENZHEN_HOSPITAL, uscc=uscc("440300", 3), name="Shenzhen Hospital",
                     region_code="440305")
    return Data(platform)


def run(platform, day: date) -> stats.ScheduleRun:  # noqa: ANN001
    return stats.run_schedules(platform.db, lambda session: platform.ctx(session, Actor.system("stats-schedules")),
                               now=china_moment(day))


def schedule(platform, request: stats.ScheduleRequest, *, made_on: date = DAY) -> int:  # noqa: ANN001
    with platform.db.session() as session:
        return stats.create_schedule(platform.ctx(session, Actor.system()), request, today=made_on).id


def deliveries(platform, schedule_id: int) -> list[ReportDelivery]:  # noqa: ANN001
    with platform.db.session() as session:
        rows = list(session.scalars(select(ReportDelivery).where(ReportDelivery.schedule_id == schedule_id)
                                    .order_by(ReportDelivery.due_on)))
        session.expunge_all()
        return rows


def file_of(platform, row: ReportDelivery) -> bytes:  # noqa: ANN001
    return (platform.settings.data_dir / "reports" / row.path).read_bytes()


def test_due_days_across_days_once_each_with_catch_up_and_pause(platform, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(3, institution=CHENGDU_HOSPITAL, region="510104", scene="010102", channel="0100")
    data.uses(4, institution=SHENZHEN_HOSPITAL, region="440305", scene="0101012", channel="0200")
    stats.refresh(platform.db)
    daily = schedule(platform, stats.ScheduleRequest("daily_report", region="510000"))
    # Weekly, on the weekday three days after DAY: due that day, covering the seven days before.
    weekly = schedule(platform, stats.ScheduleRequest("daily_report", frequency="weekly",
                                                      weekday=(DAY + timedelta(days=3)).weekday()))
    paused = schedule(platform, stats.ScheduleRequest("daily_report"))
    with platform.db.session() as session:
        stats.set_schedule_status(platform.ctx(session, Actor.system()), paused, "paused")

    first = run(platform, DAY + timedelta(days=1))
    # Made on DAY: due on DAY (covering the day before) and on the day after (covering DAY).
    assert sorted((s, d) for s, d, _ in first.made) == [(daily, DAY), (daily, DAY + timedelta(days=1))]
    assert run(platform, DAY + timedelta(days=1)).made == []  # a rerun the same day makes nothing
    rows = deliveries(platform, daily)
    assert [(r.due_on, r.start, r.end) for r in rows] == [(DAY, DAY - timedelta(days=1), DAY - timedelta(days=1)),
                                                         (DAY + timedelta(days=1), DAY, DAY)]
    assert file_of(platform, rows[0]).decode() == ",".join(stats.REPORT_FIELDS) + "\n"  # nothing that day
    body = file_of(platform, rows[1])
    assert body.decode().splitlines() == [",".join(stats.REPORT_FIELDS),
                                          f"{DAY},510104,{CHENGDU_HOSPITAL},010102,0100,99,3"]  # Sichuan only
    assert (rows[1].size, rows[1].sha256) == (len(body), hashlib.sha256(body).hexdigest())

    second = run(platform, DAY + timedelta(days=3))
    assert sorted((s, d) for s, d, _ in second.made) == [
        (daily, DAY + timedelta(days=2)), (daily, DAY + timedelta(days=3)), (weekly, DAY + timedelta(days=3))]
    week = deliveries(platform, weekly)[0]
    assert (week.start, week.end) == (DAY - timedelta(days=4), DAY + timedelta(days=2))
    lines = file_of(platform, week).decode().splitlines()
    assert len(lines) == 3 and lines[1].startswith(f"{DAY},440305,{SHENZHEN_HOSPITAL}")  # the whole country
    assert deliveries(platform, paused) == []

    # A runner down for three weeks catches up the last seven days only, each once.
    late = run(platform, DAY + timedelta(days=24))
    assert sorted(d for s, d, _ in late.made if s == daily) == [DAY + timedelta(days=n) for n in range(18, 25)]
    assert [d for s, d, _ in late.made if s == weekly] == [DAY + timedelta(days=24)]  # not the one of day 17
    with platform.db.session() as session:
        purposes = set(session.scalars(select(AuditEvent.operator).where(AuditEvent.purpose == "stats.daily_report")))
    assert f"stats-schedule:{daily}" in purposes  # each run's query audited, naming its schedule


def test_a_table_schedule_publishes_the_protected_table(platform, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(3, institution=CHENGDU_HOSPITAL, region="510104", scene="010102")
    data.uses(40, institution=CHENGDU_HOSPITAL, region="510104", scene="0101012")
    data.uses(9, institution=CHENGDU_HOSPITAL, region="510104", scene="010103")
    stats.refresh(platform.db)
    weekly = schedule(platform, stats.ScheduleRequest("table", indicator="card_uses", by="care_step", period="week",
                                                      frequency="weekly", weekday=0, format="parquet",
                                                      region="510100"))
    monday = DAY + timedelta(days=7 - DAY.weekday())
    assert [d for _, d, _ in run(platform, monday).made] == [monday]
    row = deliveries(platform, weekly)[0]
    assert (row.start, row.end) == (monday - timedelta(days=7), monday - timedelta(days=1))  # the last ISO week
    records = pq.read_table(io.BytesIO(file_of(platform, row))).to_pylist()
    shown = {r["value"]: r["count"] for r in records}
    assert shown["010102"] == "<5" and "x" in shown.values() and "3" not in shown.values()
    assert {r["period"] for r in records} == {stats.period_of(DAY, "week")}
    # A month on a daily schedule: the month so far (on the 1st, the whole month before).
    monthly = schedule(platform, stats.ScheduleRequest("table", indicator="card_uses", period="month"),
                       made_on=date(2026, 12, 1))
    run(platform, date(2026, 12, 1))
    row = deliveries(platform, monthly)[0]
    assert (row.start, row.end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert file_of(platform, row).decode().splitlines() == ["period,value,count", "2026-11,total,52"]


def test_racing_runners_make_one_file_per_due_day(platform, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(6, institution=CHENGDU_HOSPITAL, region="510104")
    stats.refresh(platform.db)
    ids = [schedule(platform, stats.ScheduleRequest("daily_report")) for _ in range(3)]
    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(lambda _: run(platform, DAY + timedelta(days=1)), range(6)))
    assert sum(len(r.made) for r in runs) == 6  # three schedules, two due days each, made once
    assert all(not r.failed for r in runs)
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ReportDelivery)) == 6
    for schedule_id in ids:
        for row in deliveries(platform, schedule_id):
            assert hashlib.sha256(file_of(platform, row)).hexdigest() == row.sha256


def test_the_api_keeps_each_operator_to_their_region(platform, client, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(2, institution=CHENGDU_HOSPITAL, region="510104", scene="010102")
    data.uses(30, institution=CHENGDU_HOSPITAL, region="510104", scene="0101012")
    stats.refresh(platform.db)
    chengdu = make_staff(platform, client, "regional_operator", None, region="510100")
    guangdong = make_staff(platform, client, "regional_operator", None, region="440000")
    auditor = make_staff(platform, client, "auditor", None)
    clerk = make_staff(platform, client, "window_clerk", CHENGDU_HOSPITAL)

    refused = client.post(SCHEDULES, headers=chengdu, json={"report": "daily_report", "region": "440305"})
    assert refused.status_code == 403 and refused.json()["code"] == "region_out_of_scope"
    for body, code in (({"report": "table", "indicator": "nope", "period": "day"}, "indicator_unknown"),
                       ({"report": "table", "indicator": "card_uses", "by": "status", "period": "day"},
                        "breakdown_unknown"),
                       ({"report": "table", "indicator": "card_uses"}, "period_unknown"),
                       ({"report": "daily_report", "frequency": "weekly"}, "weekday_invalid")):
        answer = client.post(SCHEDULES, headers=chengdu, json=body)
        assert answer.status_code == 422 and answer.json()["code"] == code, answer.text
    assert client.post(SCHEDULES, headers=chengdu, json={"report": "monthly"}).status_code == 422
    assert client.post(SCHEDULES, headers=clerk, json={"report": "daily_report"}).json()["code"] == "role_not_allowed"

    made = client.post(SCHEDULES, headers=chengdu, json={"report": "table", "indicator": "card_uses",
                                                         "by": "care_step", "period": "day"})
    assert made.status_code == 201, made.text
    mine = made.json()
    assert (mine["region"], mine["status"], mine["frequency"]) == ("510100", "active", "daily")
    ran = client.post(f"{SCHEDULES}/{mine['id']}/run", headers=chengdu)
    assert ran.status_code == 200, ran.text
    today = datetime.now(UTC).astimezone(stats.CHINA).date()
    assert [d["due_on"] for d in ran.json()["made"]] == [today.isoformat()]  # made today: today's file
    assert client.post(f"{SCHEDULES}/{mine['id']}/run", headers=chengdu).json()["made"] == []  # once
    listed = client.get(f"{SCHEDULES}/{mine['id']}/deliveries", headers=chengdu).json()
    assert len(listed) == 1
    download = client.get(listed[0]["download"], headers=chengdu)
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.text.splitlines()[0] == "period,value,count"
    assert hashlib.sha256(download.content).hexdigest() == listed[0]["sha256"]

    # Another region's operator: not listed, and every path to it is "not found".
    assert client.get(SCHEDULES, headers=guangdong).json() == []
    for method, path in (("GET", f"{SCHEDULES}/{mine['id']}"), ("GET", f"{SCHEDULES}/{mine['id']}/deliveries"),
                         ("GET", listed[0]["download"]), ("POST", f"{SCHEDULES}/{mine['id']}/pause"),
                         ("POST", f"{SCHEDULES}/{mine['id']}/run"), ("DELETE", f"{SCHEDULES}/{mine['id']}")):
        answer = client.request(method, path, headers=guangdong)
        assert answer.status_code == 404, (method, path, answer.text)
    # A national auditor sees it; a delivery of another schedule is not found under this one.
    assert [s["id"] for s in client.get(SCHEDULES, headers=auditor).json()] == [mine["id"]]
    other = client.post(SCHEDULES, headers=guangdong, json={"report": "daily_report"}).json()
    assert client.get(f"{SCHEDULES}/{other['id']}/deliveries/{listed[0]['id']}/file",
                      headers=guangdong).status_code == 404

    # Pause, resume, delete.
    assert client.post(f"{SCHEDULES}/{mine['id']}/pause", headers=chengdu).json()["status"] == "paused"
    assert client.post(f"{SCHEDULES}/{mine['id']}/resume", headers=chengdu).json()["status"] == "active"
    assert client.delete(f"{SCHEDULES}/{mine['id']}", headers=chengdu).status_code == 204
    assert client.get(f"{SCHEDULES}/{mine['id']}", headers=chengdu).status_code == 404
    assert [s["id"] for s in client.get(SCHEDULES, headers=chengdu).json()] == []

    # A file changed on disk is refused, not served.
    with platform.db.session() as session:
        session.get(ReportSchedule, mine["id"]).status = "active"
    path = platform.settings.data_dir / "reports" / f"{mine['id']}"
    target = next(path.iterdir())
    target.write_bytes(target.read_bytes() + b"tampered\n")
    altered = client.get(listed[0]["download"], headers=chengdu)
    assert altered.status_code == 409 and altered.json()["code"] == "delivery_file_altered"

    with platform.db.session() as session:
        audited = list(session.execute(select(AuditEvent.purpose, AuditEvent.actor_kind).where(
            AuditEvent.person_id == "-", AuditEvent.purpose == "stats.card_uses")))
    assert len(audited) >= 2  # the run and the download, each by the operator


def test_the_refresher_delivers_due_reports_after_each_refresh(platform, data) -> None:  # noqa: ANN001
    """``ehc serve``'s background thread: a refresh, then the due reports, every tick."""
    import time  # waiting for the background thread, this test only

    today = datetime.now(UTC).astimezone(stats.CHINA).date()
    made = schedule(platform, stats.ScheduleRequest("daily_report"), made_on=today)
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(2, institution=CHENGDU_HOSPITAL, region="510104", day=today - timedelta(days=1))
    refresher = stats.start_refresher(platform.db, 0.1, lambda session: platform.ctx(
        session, Actor.system("stats-schedules")))
    try:
        deadline = time.monotonic() + 20
        while not deliveries(platform, made) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        refresher.stop()
    row = deliveries(platform, made)[0]
    assert row.due_on == today
    # The file holds the uses refreshed just before it (the refresh ran first in the same tick).
    assert file_of(platform, row).decode().splitlines()[1].endswith(",2")


def test_ehc_stats_run_schedules(platform, settings, data) -> None:  # noqa: ANN001
    from factories import run_ehc  # a child process: only this test needs it

    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(6, institution=CHENGDU_HOSPITAL, region="510104", scene="010103", channel="0200")
    stats.refresh(platform.db)
    made = schedule(platform, stats.ScheduleRequest("daily_report", region="510100"))
    day = (DAY + timedelta(days=1)).isoformat()
    done = run_ehc(settings, "stats", "run-schedules", "--day", day)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"schedule {made}, {day}: {made}/{day}-card-uses-510100\.csv", done.stdout), done.stdout
    assert "2 reports delivered" in done.stdout
    assert "0 reports delivered" in run_ehc(settings, "stats", "run-schedules", "--day", day).stdout
    row = deliveries(platform, made)[-1]
    assert list(csv.reader(io.StringIO(file_of(platform, row).decode())))[1][-1] == "6"


# -- the page ---------------------------------------------------------------------------------------

def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_scheduler_page_in_both_languages_within_the_region(platform, client, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(7, institution=CHENGDU_HOSPITAL, region="510104")
    stats.refresh(platform.db)
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    client.cookies.set("ehc_staff", operator["Authorization"].split()[1])
    console = client.get("/staff/statistics?lang=en")
    assert 'href="/staff/statistics/schedules"' in console.text  # linked from the console
    for lang, title in (("en", "Scheduled reports"), ("zh", "定时报表")):
        page = client.get(f"/staff/statistics/schedules?lang={lang}")
        assert page.status_code == 200 and f"<h1>{title}</h1>" in page.text, page.text
    page = client.get("/staff/statistics/schedules?lang=en")
    refused = client.post("/staff/statistics/schedules?lang=en", data={
        "csrf_token": _token(page.text), "report": "daily_report", "frequency": "daily", "format": "csv",
        "region": "440305"})
    assert refused.status_code == 403 and "outside the region you operate in" in refused.text
    made = client.post("/staff/statistics/schedules", follow_redirects=False, data={
        "csrf_token": _token(page.text), "report": "table", "indicator": "card_uses", "by": "channel",
        "period": "day", "frequency": "daily", "format": "csv", "weekday": "0"})
    assert made.status_code == 303, made.text
    with platform.db.session() as session:
        mine = session.scalars(select(ReportSchedule)).one()
        assert (mine.region_code, mine.breakdown, mine.weekday) == ("510100", "channel", None)
    ran = client.post(f"/staff/statistics/schedules/{mine.id}/run", follow_redirects=False,
                      data={"csrf_token": _token(page.text)})
    assert ran.status_code == 303
    listed = client.get("/staff/statistics/schedules?lang=en").text
    link = re.search(r'href="(/staff/statistics/schedules/\d+/deliveries/\d+)"', listed).group(1)
    assert client.get(link).text.startswith("period,value,count")
    # Another region's operator: not listed, "not found" to download.
    other = make_staff(platform, client, "regional_operator", None, region="440000")
    client.cookies.set("ehc_staff", other["Authorization"].split()[1])
    assert link not in client.get("/staff/statistics/schedules").text
    assert client.get(link).status_code == 404


def test_scheduler_in_chromium(live_server, sqlite_platform, chromium) -> None:  # noqa: ANN001
    """A prefecture's operator schedules the daily card-use report on the page, runs it, downloads the
    CSV and finds their region's uses in it."""
    from factories import ARTIFACTS  # the browser's screenshots directory
    from playwright.sync_api import expect  # heavy: only the browser tests need Playwright

    from ehc.accounts import service as accounts  # the operator's account, made directly
    from ehc.web import i18n  # the page's own words, to find its controls

    platform = sqlite_platform
    make_institution(platform, CHENGDU_HOSPITAL, uscc=uscc("510100", 1), name="Chengdu Hospital", region_code="510104")
    make_institution(platform, SHENZHEN_HOSPITAL, uscc=uscc("440300", 3), name="Shenzhen Hospital",
                     region_code="440305")
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username="stats.cd",
                              password="correct horse battery", role="regional_operator", institution_id=None,
                              region_code="510100")
    data = Data(platform)
    data.cards(1, institution=CHENGDU_HOSPITAL)
    yesterday = datetime.now(UTC).astimezone(stats.CHINA).date() - timedelta(days=1)
    data.uses(9, institution=CHENGDU_HOSPITAL, region="510104", scene="010103", channel="0200", day=yesterday)
    data.uses(5, institution=SHENZHEN_HOSPITAL, region="440305", day=yesterday)
    stats.refresh(platform.db)
    zh, en = i18n.catalogue("zh"), i18n.catalogue("en")
    problems: list[str] = []
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server}/staff/sign-in?lang=zh")
    page.locator("#username").fill("stats.cd")
    page.locator("#password").fill("correct horse battery")
    page.get_by_role("button", name=zh["staff_sign_in.submit"]).click()
    page.wait_for_url("**/staff")
    page.goto(f"{live_server}/staff/statistics")
    page.get_by_role("link", name=zh["statistics.schedules.link"]).click()
    page.wait_for_url("**/staff/statistics/schedules")
    expect(page.locator("h1")).to_have_text(zh["statistics.schedules.title"])
    page.locator("#report").select_option("daily_report")
    page.locator("#frequency").select_option("daily")
    page.locator("#format").select_option("csv")
    page.locator("#create-schedule").click()
    expect(page.locator(".notice-flash")).to_be_visible()
    row = page.locator("#schedules tbody tr").first
    expect(row).to_contain_text(zh["statistics.schedules.reports.daily_report"])
    expect(row).to_contain_text("510100")
    row.get_by_role("button", name=zh["statistics.schedules.do.run"]).click()
    expect(page.locator("#deliveries tbody tr")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "staff-statistics-schedules-zh.png"), full_page=True)
    with page.expect_download() as download:
        page.locator("#deliveries a").first.click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines == [",".join(stats.REPORT_FIELDS), f"{yesterday},510104,{CHENGDU_HOSPITAL},010103,0200,99,9"]
    # In English, pausing leaves it listed as paused, with "Resume".
    page.goto(f"{live_server}/staff/statistics/schedules?lang=en")
    page.locator("#schedules tbody tr").first.get_by_role("button", name=en["statistics.schedules.do.pause"]).click()
    expect(page.locator("#schedules tbody tr").first).to_contain_text(en["statistics.schedules.statuses.paused"])
    expect(page.locator("#schedules tbody tr").first.get_by_role(
        "button", name=en["statistics.schedules.do.resume"])).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "staff-statistics-schedules-en.png"), full_page=True)
    context.close()
    assert problems == []
