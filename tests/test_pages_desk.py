"""The window clerk's card desk (issue 10): find a card by document, scanned code or EHC ID; see it
masked with its status and history; apply on the resident's behalf; approve a passport application
after seeing the passport; report lost, recover, reissue, modify, cancel with a reason; family members,
newborns, a forgotten PIN. Every read is in the resident's access log.

The TestClient tests run on SQLite and PostgreSQL; the browser test runs once, in Chromium, in both
languages, against a live uvicorn on SQLite.
"""

from __future__ import annotations

import re
from datetime import date

import httpx
from factories import ARTIFACTS, PASSWORD, make_institution, make_staff, resident_sign_in
from residents import resident_id

from ehc.accounts import service as accounts
from ehc.cards.models import Card
from ehc.kit.context import Actor
from ehc.qr import service as qr
from ehc.web import i18n

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")
NUMBER = resident_id(born=date(1980, 3, 4), sequence=61)
PASSPORT = "E55667788"


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split()[1]


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _clerk(client, platform, institution: str, role: str = "window_clerk") -> str:  # noqa: ANN001
    client.cookies.set("ehc_staff", _token(make_staff(platform, client, role, institution)))
    desk = client.get("/staff/desk?lang=en")
    assert desk.status_code == 200, desk.text
    return _csrf(desk.text)


def _post(client, path: str, token: str, **data: str):  # noqa: ANN001, ANN202
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def _apply(client, token: str, **over: str):  # noqa: ANN001, ANN202
    data = {"name": "陈静", "document_type": "01", "document_number": NUMBER, "sex": "", "birth_date": "1980-03-04"}
    data.update(over)
    return _post(client, "/staff/desk/apply", token, **data)


def test_a_clerk_finds_a_card_and_the_read_is_in_the_residents_log(client, platform, institution) -> None:  # noqa: ANN001
    made = client.post("/api/v1/cards", json={"name": "陈静", "document": {"type": "01", "number": NUMBER},
                                              "phone": "13800001111"})
    ehc_id = made.json()["ehc_id"]
    token = _clerk(client, platform, institution)

    found = _post(client, "/staff/desk/find", token, by="document", document_type="01", document_number=NUMBER)
    assert found.status_code == 303 and found.headers["location"] == f"/staff/desk/cards/{ehc_id}"
    by_id = _post(client, "/staff/desk/find", token, by="ehc_id", ehc_id=" ".join(ehc_id[i:i + 8].lower()
                                                                                    for i in range(0, 64, 8)))
    assert by_id.headers["location"] == f"/staff/desk/cards/{ehc_id}"
    page = client.get(f"/staff/desk/cards/{ehc_id}?lang=en")
    assert page.status_code == 200
    assert NUMBER not in page.text and "陈静" not in page.text  # masked, as every staff screen
    assert NUMBER[:3] in page.text and "陈*" in page.text
    assert EN["desk.action.register"] in page.text and "Public website" in page.text  # history, with its channel

    unknown = _post(client, "/staff/desk/find?lang=en", token, by="document", document_type="01",
                    document_number=resident_id(born=date(1990, 1, 1), sequence=99))
    assert unknown.status_code == 404 and EN["errors.card_not_found"] in unknown.text
    bad = _post(client, "/staff/desk/find?lang=en", token, by="document", document_type="01", document_number="123")
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text

    # A scan at the desk: the code names the card, and the scan is a card use on the window channel.
    with platform.db.session() as session:
        text = qr.issue_dynamic(platform.ctx(session, Actor.system()), session.get(Card, ehc_id)).text
    scanned = _post(client, "/staff/desk/find", token, by="code", code=text)
    assert scanned.status_code == 303 and scanned.headers["location"] == f"/staff/desk/cards/{ehc_id}"
    again = _post(client, "/staff/desk/find?lang=en", token, by="code", code=text)
    assert again.status_code == 422 and EN["errors.qr_replayed"] in again.text

    resident = resident_sign_in(client, platform, "13800001111")
    log = client.get("/api/v1/me/access-log", headers=resident).json()
    purposes = {entry["purpose"] for entry in log["items"]}
    assert {"card.desk", "card.lookup", "card.verify"} & purposes >= {"card.desk", "card.verify"}, purposes
    uses = client.get("/api/v1/me/card-uses", headers=resident)
    assert uses.status_code == 200 and uses.json()[0]["channel"] == "0100"


def test_a_clerk_applies_reviews_and_changes_a_card_with_reasons(client, platform, institution) -> None:  # noqa: ANN001
    token = _clerk(client, platform, institution)
    issued = _apply(client, token)
    assert issued.status_code == 303, re.findall(r'class="field-error"[^>]*>(.*?)</p>|<li>(.*?)</li>', issued.text)
    ehc_id = issued.headers["location"].rsplit("/", 1)[1]
    assert _apply(client, token).headers["location"] == issued.headers["location"]  # the same card, not a second

    # A passport goes to review; the clerk approves it only with the very passport.
    passport = _apply(client, token, name="John Smith", document_type="03", document_number=PASSPORT, sex="1",
                      birth_date="1975-05-05")
    pid = passport.headers["location"].rsplit("/", 1)[1]
    pending = client.get(f"/staff/desk/cards/{pid}?lang=en")
    assert EN["status.pending_review"] in pending.text and 'id="form-approve"' in pending.text
    wrong = _post(client, f"/staff/desk/cards/{pid}/review/approve?lang=en", token, document_type="03",
                  document_number="E00000001")
    assert wrong.status_code == 409 and EN["errors.review_document_mismatch"] in wrong.text
    none = _post(client, f"/staff/desk/cards/{pid}/review/approve?lang=en", token, document_type="03")
    assert none.status_code == 422 and EN["errors.document_check_required"] in none.text
    approved = _post(client, f"/staff/desk/cards/{pid}/review/approve", token, document_type="03",
                     document_number=PASSPORT.lower(), reason="original seen")
    assert approved.status_code == 303
    card = client.get(f"/staff/desk/cards/{pid}?lang=en").text
    assert EN["status.normal"] in card and EN["verifier.document-seen"] in card and EN["flash.desk_approve"] in card

    lost = _post(client, f"/staff/desk/cards/{ehc_id}/status/report-lost?lang=en", token, reason="")
    assert lost.status_code == 422 and EN["errors.reason_required"] in lost.text
    for action, status in (("report-lost", "lost"), ("recover", "normal"), ("reissue", "normal")):
        done = _post(client, f"/staff/desk/cards/{ehc_id}/status/{action}", token, reason=f"{action} at the window")
        assert done.status_code == 303, (action, done.text)
    events = client.get(f"/api/v1/cards/{ehc_id}/events", headers={"Authorization": f"Bearer {client.cookies['ehc_staff']}"}).json()
    assert [e["action"] for e in events] == ["register", "report_lost", "recover", "reissue"]
    assert all(e["channel"] == "0100" and e["institution_id"] == institution for e in events)
    assert events[1]["reason"] == "report-lost at the window"

    # No phone on record: the desk says so, and adding one is how the resident gets back by SMS.
    assert 'id="no-phone-note"' in client.get(f"/staff/desk/cards/{ehc_id}?lang=en").text
    nothing = _post(client, f"/staff/desk/cards/{ehc_id}/modify?lang=en", token)
    assert nothing.status_code == 422 and EN["errors.nothing_to_change"] in nothing.text
    assert _post(client, f"/staff/desk/cards/{ehc_id}/modify", token, phone="13900002222",
                 reason="phone added at the window").status_code == 303
    assert "139****2222" in client.get(f"/staff/desk/cards/{ehc_id}?lang=en").text
    assert resident_sign_in(client, platform, "13900002222")  # the resident signs in now

    # Family and a newborn, bound to this card.
    child = _post(client, f"/staff/desk/cards/{ehc_id}/family", token, relation="child", name="陈小雨",
                  document_type="01", document_number=resident_id(born=date(2012, 6, 1), sequence=62, male=False))
    assert child.status_code == 303, child.text
    baby = _post(client, f"/staff/desk/cards/{ehc_id}/newborn", token, sex="1", birth_date=date.today().isoformat())
    assert baby.status_code == 303
    page = client.get(f"/staff/desk/cards/{ehc_id}?lang=en").text
    assert page.count('href="/staff/desk/cards/') >= 2 and EN["relations.child"] in page

    assert _post(client, f"/staff/desk/cards/{ehc_id}/pin/clear?lang=en", token).status_code == 422
    assert _post(client, f"/staff/desk/cards/{ehc_id}/pin/clear", token,
                 reason="ID card shown").headers["location"] == f"/staff/desk/cards/{ehc_id}"

    cancelled = _post(client, f"/staff/desk/cards/{pid}/status/cancel", token, reason="left the country")
    assert cancelled.status_code == 303
    assert 'id="form-modify"' not in client.get(f"/staff/desk/cards/{pid}").text


def test_the_desk_applies_the_apis_roles(client, platform, institution) -> None:  # noqa: ANN001
    ehc_id = client.post("/api/v1/cards", json={"name": "陈静", "document": {"type": "01", "number": NUMBER}}).json()["ehc_id"]
    nurse = _clerk(client, platform, institution, "nurse")  # CardStaff: reads and newborns, no window work
    page = client.get(f"/staff/desk/cards/{ehc_id}?lang=en")
    assert page.status_code == 200 and 'id="form-report_lost"' not in page.text and 'id="form-modify"' not in page.text
    refused = _post(client, f"/staff/desk/cards/{ehc_id}/status/report-lost", nurse, reason="x")
    assert refused.status_code == 403
    client.cookies.set("ehc_staff", _token(make_staff(platform, client, "cashier", institution)))
    assert client.get("/staff/desk").status_code == 403
    assert 'href="/staff/desk"' not in client.get("/staff").text


def test_the_clerks_desk_in_chromium_in_both_languages(live_server, sqlite_platform, chromium) -> None:  # noqa: ANN001
    institution = make_institution(sqlite_platform, "inst-desk", uscc="12510000MB1234567X", name="Desk Hospital",
                                   kind="hospital", region_code="510104", level="3A")
    with sqlite_platform.db.session() as session:
        accounts.create_staff(sqlite_platform.ctx(session, Actor.system()), username="li.window", password=PASSWORD,
                              role="window_clerk", institution_id=institution, display_name="李窗口")
    http = httpx.Client(base_url=live_server, timeout=30)
    http.post("/api/v1/cards", json={"name": "陈静", "document": {"type": "01", "number": NUMBER}})
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server}/staff/sign-in")
    page.locator("#username").fill("li.window")
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.get_by_role("link", name=ZH["nav.staff_desk"]).first.click()
    page.wait_for_url("**/staff/desk")
    page.locator("#find-document_number").fill(NUMBER)
    page.locator("#find-document button[type=submit]").click()
    page.wait_for_url("**/staff/desk/cards/*")
    assert page.locator("#card-status").inner_text() == ZH["status.normal"]
    assert NUMBER not in page.content()
    page.locator("#form-report_lost [name=reason]").fill("本人手机遗失")
    page.locator("#form-report_lost button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#card-status").inner_text() == ZH["status.lost"]
    assert ZH["flash.desk_report_lost"] in page.content()
    assert "本人手机遗失" in page.locator("#history").inner_text() and "服务窗口" in page.locator("#history").inner_text()
    page.screenshot(path=str(ARTIFACTS / "desk-card-zh.png"), full_page=True)

    page.goto(f"{live_server}/staff/desk/apply?lang=en")
    page.locator("#apply-name").fill("John Smith")
    page.locator("#apply-document_type").select_option("03")
    page.locator("#apply-document_number").fill(PASSPORT)
    page.locator("#apply-sex").select_option("1")
    page.locator("#apply-birth_date").fill("1975-05-05")
    page.get_by_role("button", name=EN["desk.apply_submit"]).click()
    page.wait_for_url("**/staff/desk/cards/*")
    assert page.locator("#card-status").inner_text() == EN["status.pending_review"]
    page.locator("#approve-document_number").fill(PASSPORT)
    page.get_by_role("button", name=EN["desk.approve"]).click()
    page.wait_for_load_state()
    assert page.locator("#card-status").inner_text() == EN["status.normal"]
    assert page.locator("#card-verifier").inner_text() == EN["verifier.document-seen"]
    page.screenshot(path=str(ARTIFACTS / "desk-card-en.png"), full_page=True)
    context.close()
