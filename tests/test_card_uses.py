"""Card uses beyond the online scan: offline uses uploaded in batches (verified again as at the scan,
deduplicated by key id and nonce, replays flagged), and monitoring by institutions and regions (API
and the staff page), on SQLite and PostgreSQL; the page once more in Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from factories import ARTIFACTS, hospital_system, make_staff, uscc
from sqlalchemy import func, select
from test_qr_service import PERSON, draw, refused, scan

from ehc.audit.models import AuditEvent
from ehc.cards.models import Card
from ehc.client import SM2Auth
from ehc.institutions import service as institutions
from ehc.institutions.models import Institution
from ehc.kit.codes import Channel
from ehc.kit.context import Actor
from ehc.qr import codec
from ehc.qr import service as qr
from ehc.qr import uses as card_uses
from ehc.qr.models import CardUse, Revocation
from ehc.web import i18n

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")
OTHER = "inst-test-02"  # a hospital in Shenzhen (440305), outside region 510100


def add_terminals(platform, institution_id: str, *terminal_ids: str) -> None:
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        place = session.get(Institution, institution_id)
        for terminal_id in terminal_ids:
            institutions.register_terminal(ctx, place, terminal_id=terminal_id, role="kiosk")


@pytest.fixture
def his(platform, institution, his) -> SM2Auth:
    """conftest's hospital system, its institution with kiosks K01 and K02 and window W01."""
    add_terminals(platform, institution, "K01", "K02", "W01")
    return his


@pytest.fixture
def other_his(platform, institution) -> SM2Auth:
    with platform.db.session() as session:
        institutions.create_institution(session, uscc=uscc("440300", 7), name="Shenzhen Hospital",
                                        kind="hospital", region_code="440305", institution_id=OTHER)
    add_terminals(platform, OTHER, "K01")
    return hospital_system(platform, OTHER)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def item(code: str, at: datetime, terminal_id: str = "K01", scene: str = "0101012", channel: str = "0200",
         **extra) -> dict:
    return {"code": code, "scene": scene, "channel": channel, "terminal_id": terminal_id, "at": iso(at), **extra}


def upload(client, auth, *items: dict):
    return client.post("/api/v1/qr/uses/batch", json={"uses": list(items)}, auth=auth)


def rows(platform) -> list[CardUse]:
    with platform.db.session() as session:
        return list(session.scalars(select(CardUse).order_by(CardUse.id)))


def audit_count(platform) -> int:
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def issued(platform, ehc_id: str, when: datetime, static: bool = False) -> str:
    """A code issued at ``when``, as the resident's phone (or the window's printer) drew it then."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        card = session.get(Card, ehc_id)
        return (qr.issue_static if static else qr.issue_dynamic)(ctx, card, now=when).text


# -- batch upload -----------------------------------------------------------------------------------

def test_an_offline_batch_is_verified_as_at_the_scan_deduplicated_and_replays_flagged(
        client, platform, institution, his, holder):
    ehc_id, resident = holder
    now = datetime.now(UTC)
    first, second = draw(client, resident)["text"], draw(client, resident)["text"]
    earlier = issued(platform, ehc_id, now - timedelta(minutes=20))  # drawn 20 minutes ago
    static = issued(platform, ehc_id, now - timedelta(days=2), static=True)
    batch = [
        item(first, now - timedelta(seconds=1)),                                   # 0 recorded
        item(first, now - timedelta(seconds=1), terminal_id="K02"),                # 1 replay: another terminal
        item(earlier, now - timedelta(minutes=19), scene="010103", department="0300"),  # 2 recorded, long ago
        item(earlier, now - timedelta(minutes=10)),                                # 3 expired at the scan
        item(earlier, now - timedelta(minutes=21)),                                # 4 scanned before it was issued
        item(static, now - timedelta(hours=30), terminal_id="W01", channel="0100"),  # 5 recorded
        item(static, now - timedelta(hours=5), terminal_id="W01", channel="0100"),   # 6 recorded: a static code is reused
        item(static, now - timedelta(hours=5), terminal_id="W01", channel="0100"),   # 7 duplicate: same moment
        item(second, now + timedelta(minutes=5)),                                  # 8 in the future
        item(second, now - timedelta(days=31)),                                    # 9 too old
        item(second, now, terminal_id="K99"),                                      # 10 terminal not registered
        item("hello", now),                                                        # 11 malformed
        item(second, now, scene="123"),                                            # 12 bad care-step code
        item(second, now.replace(tzinfo=None)),                                    # 13 no time zone
    ]
    answer = upload(client, his, *batch)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    outcomes = [(i["index"], i["outcome"], i["code"]) for i in body["items"]]
    assert outcomes == [
        (0, "recorded", None), (1, "replay", None), (2, "recorded", None), (3, "rejected", "qr_expired"),
        (4, "rejected", "qr_not_yet_valid"), (5, "recorded", None), (6, "recorded", None), (7, "duplicate", None),
        (8, "rejected", "use_in_future"), (9, "rejected", "use_too_old"), (10, "rejected", "terminal_unknown"),
        (11, "rejected", "qr_malformed"), (12, "rejected", "card_use_codes_invalid"),
        (13, "rejected", "use_time_invalid"),
    ]
    assert body["counts"] == {"recorded": 4, "duplicate": 1, "replay": 1, "rejected": 8}
    assert all(i["ehc_id"] == ehc_id for i in body["items"] if i["outcome"] != "rejected")
    assert body["items"][7]["use_id"] == body["items"][6]["use_id"]

    stored = rows(platform)
    assert [u.id for u in stored] == [i["use_id"] for i in body["items"][:3] + body["items"][5:7]]
    assert all(u.offline and u.institution_id == institution and u.region_code == "510104" for u in stored)
    assert [u.replay for u in stored] == [False, True, False, False, False]
    assert abs(stored[2].at - (now - timedelta(minutes=19))) < timedelta(milliseconds=1)  # the scan's moment
    assert (stored[2].scene, stored[2].department, stored[2].code_type) == ("010103", "0300", 0)
    assert all(abs(u.recorded_at - now) < timedelta(seconds=60) for u in stored)
    assert stored[3].code_type == 1 and stored[3].nonce == stored[4].nonce and stored[3].key_id == stored[4].key_id

    # The same batch again (a retry after a lost answer): the same uses, nothing new, no new audit.
    events = audit_count(platform)
    again = upload(client, his, *batch)
    assert again.status_code == 200, again.text
    redo = again.json()["items"]
    assert [(i["outcome"], i["use_id"]) for i in redo if i["outcome"] != "rejected"] == [
        ("duplicate", body["items"][k]["use_id"]) for k in (0, 1, 2, 5, 6, 7)]
    assert [i["code"] for i in redo] == [i["code"] for i in body["items"]]
    assert len(rows(platform)) == 5 and audit_count(platform) == events

    # The code uploaded while still valid is used up online too; the resident saw who read the card.
    refused(scan(client, first, auth=his), "qr_replayed")
    log = client.get("/api/v1/me/access-log", headers=resident).json()["items"]
    assert [(e["purpose"], e["institution_id"]) for e in log][:1] == [("card.verify", institution)]


def test_offline_and_online_uses_of_one_code_meet(client, platform, institution, his, other_his, holder):
    _, resident = holder
    now = datetime.now(UTC)
    code = draw(client, resident)["text"]
    online = scan(client, code, auth=his, terminal_id="W01")
    assert online.status_code == 200, online.text
    [use] = rows(platform)
    assert (use.key_id, len(use.nonce), use.region_code, use.offline, use.replay) == (
        codec.decode(code).payload.key_id, 16, "510104", False, False)
    assert use.recorded_at == use.at and use.nonce == codec.decode(code).payload.nonce.hex()

    # The same code, scanned offline at the same terminal (it verified online too): a duplicate.
    same = upload(client, his, item(code, now, terminal_id="W01")).json()["items"][0]
    assert (same["outcome"], same["use_id"]) == ("duplicate", use.id)
    # ... at another hospital's kiosk, offline, within the code's two minutes: a replay, reported.
    elsewhere = upload(client, other_his, item(code, now)).json()
    assert elsewhere["counts"]["replay"] == 1
    replayed = rows(platform)[-1]
    assert (replayed.institution_id, replayed.region_code, replayed.replay) == (OTHER, "440305", True)


def test_batch_limits_and_callers(client, platform, institution, his, holder):
    _, resident = holder
    code = draw(client, resident)["text"]
    now = datetime.now(UTC)
    too_many = upload(client, his, *[item(code, now)] * 501)
    assert too_many.status_code == 422 and too_many.json()["code"] == "batch_too_large"
    empty = upload(client, his)
    assert empty.status_code == 422 and empty.json()["code"] == "batch_empty"
    assert upload(client, his, *[item(code, now)] * 500).json()["counts"]["duplicate"] == 499
    admin = make_staff(platform, client, "institution_admin", institution)
    denied = client.post("/api/v1/qr/uses/batch", json={"uses": [item(code, now)]}, headers=admin)
    assert denied.status_code == 403 and denied.json()["code"] == "role_not_allowed"
    nurse = make_staff(platform, client, "nurse", institution)
    by_nurse = client.post("/api/v1/qr/uses/batch", json={"uses": [item(code, now, terminal_id="K02")]},
                           headers=nurse)
    assert by_nurse.status_code == 200 and by_nurse.json()["items"][0]["outcome"] == "replay"
    assert rows(platform)[-1].actor_kind == "staff"


def test_a_static_code_revoked_before_the_scan_is_rejected(client, platform, institution, his, holder):
    ehc_id, _ = holder
    now = datetime.now(UTC)
    static = issued(platform, ehc_id, now - timedelta(days=3), static=True)
    rid = codec.decode(static).payload.nonce.hex()
    with platform.db.session() as session:
        session.add(Revocation(rid=rid, action="add", reason="lost", at=now - timedelta(days=1)))
    answer = upload(client, his, item(static, now - timedelta(days=2)), item(static, now - timedelta(hours=1)))
    assert [(i["outcome"], i["code"]) for i in answer.json()["items"]] == [("recorded", None),
                                                                          ("rejected", "qr_revoked")]


def test_a_static_code_at_a_payment_step_is_never_taken_offline(client, platform, institution, his, holder):
    ehc_id, _ = holder
    now = datetime.now(UTC)
    static = issued(platform, ehc_id, now - timedelta(days=1), static=True)
    answer = upload(client, his, item(static, now - timedelta(hours=1), scene="0101051"),
                    item(static, now - timedelta(hours=1), scene="010102"))
    # The second factor a payment needs is checked online only (docs/qr-format.md §9.3).
    assert [(i["outcome"], i["code"]) for i in answer.json()["items"]] == [("rejected", "second_factor_online_only"),
                                                                          ("recorded", None)]


def test_service_upload_takes_the_time_and_the_horizon(platform, institution, his, holder):
    ehc_id, _ = holder
    when = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    code = issued(platform, ehc_id, when)
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor(kind="machine", channel=Channel.HOSPITAL_SYSTEM, institution_id=institution,
                                          roles=frozenset({"hospital_system"})))
        use = card_uses.OfflineUse(code=code, scene="000000", channel="0200", terminal_id="K01",
                                   at=when + timedelta(seconds=30))
        late = card_uses.upload(ctx, [use], now=when + timedelta(days=3), horizon=timedelta(days=2))
        assert [(i.outcome, i.problem) for i in late.items] == [(card_uses.Outcome.REJECTED, "use_too_old")]
        done = card_uses.upload(ctx, [use], now=when + timedelta(days=3))
        assert done.counts["recorded"] == 1


# -- monitoring -----------------------------------------------------------------------------------

@pytest.fixture
def scanned(client, platform, institution, his, other_his, holder):
    """Three uses at the test hospital (510104: two online, one offline) and one in Shenzhen."""
    _, resident = holder
    now = datetime.now(UTC)
    assert scan(client, draw(client, resident)["text"], auth=his, terminal_id="W01", scene="0101011").status_code == 200
    assert scan(client, draw(client, resident)["text"], auth=his, terminal_id="W01", scene="010105").status_code == 200
    assert upload(client, his, item(draw(client, resident)["text"], now - timedelta(seconds=5))).status_code == 200
    assert upload(client, other_his, item(draw(client, resident)["text"], now)).status_code == 200
    return resident


def listed(client, headers=None, auth=None, **params):
    return client.get("/api/v1/card-uses", params=params, headers=headers, auth=auth)


def test_each_caller_sees_the_uses_in_their_reach(client, platform, institution, his, other_his, scanned):
    admin = make_staff(platform, client, "institution_admin", institution)
    regional = make_staff(platform, client, "regional_operator", None, region="510100")
    faraway = make_staff(platform, client, "regional_operator", None, region="440300")
    auditor = make_staff(platform, client, "auditor", None)
    platform_admin = make_staff(platform, client, "platform_admin", None)

    def seen(answer) -> list[str]:
        assert answer.status_code == 200, answer.text
        return sorted(u["institution_id"] for u in answer.json()["items"])

    assert seen(listed(client, admin)) == [institution] * 3
    assert seen(listed(client, auth=his)) == [institution] * 3
    assert seen(listed(client, regional)) == [institution] * 3
    assert seen(listed(client, faraway)) == [OTHER]
    assert seen(listed(client, auditor)) == sorted([institution] * 3 + [OTHER])
    assert seen(listed(client, platform_admin)) == sorted([institution] * 3 + [OTHER])
    # Out of reach: not found, as the registry answers; a region filter narrows within reach.
    for headers, auth in ((admin, None), (regional, None), (None, his)):
        hidden = listed(client, headers, auth, institution_id=OTHER)
        assert hidden.status_code == 404 and hidden.json()["code"] == "institution_not_found"
    assert seen(listed(client, auditor, institution_id=OTHER)) == [OTHER]
    assert seen(listed(client, auditor, region="440000")) == [OTHER]
    assert seen(listed(client, regional, region="440000")) == []
    bad = listed(client, auditor, region="99")
    assert bad.status_code == 422 and bad.json()["code"] == "region_code_invalid"
    # Desk staff scan; they do not monitor.
    clerk = make_staff(platform, client, "window_clerk", institution)
    assert listed(client, clerk).status_code == 403

    # No card id and no person in a row.
    first = listed(client, admin).json()["items"][0]
    assert not {"ehc_id", "person_id", "operator", "actor_id"} & first.keys()
    assert PERSON["name"] not in listed(client, auditor).text


def test_filters_and_keyset_pages(client, platform, institution, scanned):
    auditor = make_staff(platform, client, "auditor", None)
    items = listed(client, auditor).json()["items"]
    ats = [(datetime.fromisoformat(u["at"]), u["id"]) for u in items]
    assert ats == sorted(ats, reverse=True)  # newest first
    assert [u["scene"] for u in listed(client, auditor, scene="010105").json()["items"]] == ["010105"]
    offline = listed(client, auditor, offline="true").json()["items"]
    assert len(offline) == 2 and all(u["offline"] and u["recorded_at"] >= u["at"] for u in offline)
    assert len(listed(client, auditor, offline="false", institution_id=institution).json()["items"]) == 2
    assert listed(client, auditor, replay="true").json()["items"] == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert listed(client, auditor, **{"from": future}).json()["items"] == []
    assert len(listed(client, auditor, to=future).json()["items"]) == 4

    pages, cursor = [], None
    while True:
        answer = listed(client, auditor, limit=3, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        pages.append([u["id"] for u in answer.json()["items"]])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 1] and [i for p in pages for i in p] == [u["id"] for u in items]
    broken = listed(client, auditor, cursor="not-a-cursor")
    assert broken.status_code == 422 and broken.json()["code"] == "cursor_invalid"


def test_summary_by_day_and_scene_and_by_institution(client, platform, institution, scanned):
    auditor = make_staff(platform, client, "auditor", None)
    regional = make_staff(platform, client, "regional_operator", None, region="510100")
    today = datetime.now(timezone(timedelta(hours=8))).date().isoformat()
    by_day = client.get("/api/v1/card-uses/summary", headers=regional)
    assert by_day.status_code == 200, by_day.text
    body = by_day.json()
    assert body["group"] == "day" and body["total"] == 3 and "from" in body and "to" in body
    assert sorted((r["day"], r["scene"], r["uses"], r["offline"]) for r in body["rows"]) == [
        (today, "0101011", 1, 0), (today, "0101012", 1, 1), (today, "010105", 1, 0)]
    by_place = client.get("/api/v1/card-uses/summary", params={"group": "institution"}, headers=auditor).json()
    assert [(r["institution_id"], r["uses"], r["offline"], r["region_code"]) for r in by_place["rows"]] == [
        (institution, 3, 1, "510104"), (OTHER, 1, 1, "440305")]
    assert by_place["rows"][0]["institution_name"] == "Test People's Hospital"
    long = client.get("/api/v1/card-uses/summary", params={"from": "2020-01-01T00:00:00+08:00"}, headers=auditor)
    assert long.status_code == 422 and long.json()["code"] == "period_invalid"


def test_an_impossible_period_is_refused_by_the_list_too(client, platform):
    auditor = make_staff(platform, client, "auditor", None)
    for params in ({"to": "23935", "from": "0059-10-03T00:00:00+08:00"},  # seconds since 1970; year 59
                   {"from": "2026-05-02T00:00:00+08:00", "to": "2026-05-01T00:00:00+08:00"},  # backwards
                   {"from": "2026-05-01T00:00:00+08:00", "to": "2026-05-01T00:00:00+08:00"}):  # empty
        for path in ("/api/v1/card-uses", "/api/v1/card-uses/summary"):
            answer = client.get(path, params=params, headers=auditor)
            assert answer.status_code == 422 and answer.json()["code"] == "period_invalid", (path, params, answer.text)


# -- the staff page -------------------------------------------------------------------------------

def test_the_card_use_page_shows_the_reach_and_no_people(client, platform, institution, scanned):
    admin = make_staff(platform, client, "institution_admin", institution)
    client.cookies.set("ehc_staff", admin["Authorization"].split()[1])
    page = client.get("/staff/card-uses?lang=en")
    assert page.status_code == 200, page.text
    assert EN["card_uses.title"] in page.text and 'href="/staff/card-uses"' in page.text
    assert page.text.count('class="card-use"') == 3 and "Shenzhen" not in page.text
    assert PERSON["name"] not in page.text
    filtered = client.get("/staff/card-uses?lang=en&offline=1")
    assert filtered.text.count('class="card-use"') == 1 and EN["card_uses.offline_pill"] in filtered.text
    wrong = client.get("/staff/card-uses?lang=en&from=2020-01-01")
    assert wrong.status_code == 422 and EN["card_uses.errors.period_invalid"] in wrong.text
    assert client.get(f"/staff/card-uses?institution_id={OTHER}").status_code == 404

    clerk = make_staff(platform, client, "window_clerk", institution)
    client.cookies.set("ehc_staff", clerk["Authorization"].split()[1])
    assert client.get("/staff/card-uses").status_code == 403
    assert 'href="/staff/card-uses"' not in client.get("/staff").text


def test_card_use_page_in_chromium(live_server, sqlite_platform, chromium):
    """A hospital system uploads an offline use; the institution admin finds it on the page."""
    import httpx
    from playwright.sync_api import expect

    platform = sqlite_platform
    with platform.db.session() as session:
        institutions.create_institution(session, uscc="91510104MA6CN3X05K", name="锦江区第一人民医院",
                                        kind="hospital", region_code="510104", level="3A",
                                        institution_id="inst-browser")
        from ehc.accounts import service as accounts

        accounts.create_staff(platform.ctx(session, Actor.system()), username="admin.jj", password="correct horse battery",
                              role="institution_admin", institution_id="inst-browser", display_name="张管理")
    add_terminals(platform, "inst-browser", "K01")
    his = hospital_system(platform, "inst-browser")
    api = httpx.Client(base_url=live_server, timeout=30)
    made = api.post("/api/v1/cards", json=PERSON)
    assert made.status_code == 201, made.text
    code = issued(platform, made.json()["ehc_id"], datetime.now(UTC) - timedelta(seconds=30))
    done = api.post("/api/v1/qr/uses/batch", auth=his, json={"uses": [
        item(code, datetime.now(UTC) - timedelta(seconds=20), scene="0101081", department="0300")]})
    assert done.status_code == 200 and done.json()["counts"]["recorded"] == 1, done.text

    problems: list[str] = []
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server}/staff/sign-in?lang=zh")
    page.locator("#username").fill("admin.jj")
    page.locator("#password").fill("correct horse battery")
    page.get_by_role("button", name=ZH["staff_sign_in.submit"]).click()
    page.wait_for_url("**/staff")
    page.get_by_role("link", name=ZH["nav.staff_card_uses"]).click()
    page.wait_for_url("**/staff/card-uses")
    expect(page.locator("h1")).to_have_text(ZH["card_uses.title"])
    row = page.locator(".card-use").first
    expect(row.locator(".card-use-scene")).to_contain_text(ZH["card_uses.scenes.0101081"])
    expect(row).to_contain_text("K01")
    expect(row).to_contain_text(ZH["card_uses.offline_pill"])
    expect(page.locator(".card-use-summary")).to_contain_text(ZH["card_uses.scenes.0101081"])
    assert PERSON["name"] not in page.content() and made.json()["ehc_id"] not in page.content()
    page.locator("#offline").select_option("0")
    page.get_by_role("button", name=ZH["card_uses.apply"]).click()
    page.wait_for_url(re.compile(r".*/staff/card-uses\?.*offline=0"))
    expect(page.locator(".card-use")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "staff-card-uses-zh.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server}/staff/card-uses")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    context.close()
    assert problems == []
