"""The master index's review queue: listing within reach, both sides side by side masked, accept
(link the record's identifiers, or merge two people) and reject, each decided exactly once. On
SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import date

import pytest
from factories import ARTIFACTS, make_institution, make_staff
from residents import resident_id
from sqlalchemy import select

from ehc.audit.models import AuditEvent
from ehc.cards.models import Card
from ehc.kit.context import Actor
from ehc.kit.errors import Conflict
from ehc.mpi import review
from ehc.mpi.matching import Candidate, Record
from ehc.mpi.models import MatchReview, Merge
from ehc.mpi.service import Identifier
from ehc.web import i18n

ZH = i18n.catalogue("zh")

URL = "/api/v1/mpi/reviews"
HOLDER = {"name": "欧阳建国", "document": {"type": "01", "number": resident_id("510104", date(1970, 1, 2), 33, True)},
          "sex": "1", "birth_date": "1970-01-02", "phone": "13912340002", "address": "成都市锦江区红星路一段1号"}
TWIN = {"name": "欧阳建囯", "document": {"type": "01", "number": resident_id("510104", date(1970, 1, 2), 34, True)},
        "sex": "1", "birth_date": "1970-01-02"}
COMPARISON = {"name": {"level": "pinyin", "weight": 6.1}, "birth_date": {"level": "exact", "weight": 8.7}}


def problem(answer, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code, answer.text


def person_of(platform, ehc_id: str) -> str:
    with platform.db.session() as session:
        return session.get(Card, ehc_id).person_id


def candidate(person_id: str, grade: str = "probable") -> Candidate:
    return Candidate(person_id=person_id, score=12.5, probability=0.93, grade=grade, comparison=COMPARISON)


def queue(platform, *, record: Record | None = None, left: str | None = None, right: str,
          institution: str | None = None, source: str = "realtime") -> int:
    with platform.db.session() as session:
        row = review.enqueue(platform.ctx(session, Actor.system()), candidate(right), source=source, record=record,
                             left_person_id=left, institution_id=institution)
        return row.id


def registration_review(platform, *, left: str, right: str) -> int:
    """The review the twin's registration queued itself: a near-identical name (建国/建囯), the same
    birth date and sex, another document (mpi.matching.realtime.screen_registration)."""
    with platform.db.session() as session:
        [row] = session.scalars(select(MatchReview).where(MatchReview.source == "registration"))
        assert (row.left_person_id, row.right_person_id) == (left, right)
        return row.id


@pytest.fixture
def world(client, platform, clerk, institution):
    card = client.post("/api/v1/cards", json=HOLDER, headers=clerk).json()["ehc_id"]
    twin = client.post("/api/v1/cards", json=TWIN, headers=clerk).json()["ehc_id"]
    make_institution(platform, "inst-test-02", uscc="12440300MB7654321X", name="Shenzhen Clinic", kind="clinic",
                     region_code="440300")
    submitted = Record(name="欧阳建国", sex="1", birth_date=date(1970, 1, 2), phone="13912340002",
                       identifiers=(Identifier(f"mrn:{institution}", "HIS-0042"),))
    return {
        "card": card, "twin": twin,
        "record_review": queue(platform, record=submitted, right=person_of(platform, card), institution=institution),
        "pair_review": registration_review(platform, left=person_of(platform, twin), right=person_of(platform, card)),
        "far_review": queue(platform, record=Record(name="张三", identifiers=(Identifier("mrn:inst-test-02", "Z1"),)),
                            right=person_of(platform, card), institution="inst-test-02", source="batch"),
    }


def test_operators_list_the_reviews_of_their_reach_open_first(client, platform, world, institution):
    admin = make_staff(platform, client, "platform_admin", None)
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    inst_admin = make_staff(platform, client, "institution_admin", institution)

    def ids(headers, **filters) -> list[int]:
        answer = client.get(URL, params=filters, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"] == len(answer.json()["items"])
        return [item["id"] for item in answer.json()["items"]]

    everything = ids(admin)
    assert sorted(everything) == sorted([world["record_review"], world["pair_review"], world["far_review"]])
    # The operator of 5101xx: the review submitted by a hospital of the region, and the pair whose
    # person lives there; not the one submitted by the Shenzhen clinic.
    assert sorted(ids(operator)) == sorted([world["record_review"], world["pair_review"]])
    # The hospital's admin: its own submitted records only (a merge of two people is the commission's).
    assert ids(inst_admin) == [world["record_review"]]
    assert ids(admin, source="batch") == [world["far_review"]]
    assert sorted(ids(admin, institution_id=institution)) == sorted([world["record_review"], world["pair_review"]])
    # Decided ones go after the open ones.
    assert client.post(f"{URL}/{world['record_review']}/reject", json={"reason": "different people"},
                       headers=admin).status_code == 200
    assert ids(admin)[-1] == world["record_review"]
    assert ids(admin, status="rejected") == [world["record_review"]]
    problem(client.get(URL, params={"status": "maybe"}, headers=admin), 422, "review_filter_invalid")
    problem(client.get(f"{URL}/{world['far_review']}", headers=operator), 404, "review_not_found")
    problem(client.get(f"{URL}/{world['pair_review']}", headers=inst_admin), 404, "review_not_found")


def test_a_review_shows_both_sides_masked_with_the_comparison(client, platform, world):
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    answer = client.get(f"{URL}/{world['record_review']}", headers=operator)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["pair"] == "record" and body["grade"] == "probable" and body["comparison"] == COMPARISON
    left, right = body["left"], body["right"]
    assert left["kind"] == "record" and right["kind"] == "person" and right["ehc_id"] == world["card"]
    for side in (left, right):
        assert side["fields"]["name"] == "欧**国"
        assert side["fields"]["birth_date"] == "1970-01-**"
        assert side["fields"]["phone"] == "139****0002"
    assert right["fields"]["address"] == "成都市锦江区" + "*" * (len(HOLDER["address"]) - 6)
    assert {"system": "mrn:inst-test-01", "value": "H*****42"} in left["identifiers"]
    # Nothing in clear: not the name, the phone, the document or the submitted number.
    for secret in ("欧阳建国", "13912340002", HOLDER["document"]["number"], "HIS-0042", "红星路"):
        assert secret not in answer.text
    with platform.db.session() as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.purpose == "mpi.review",
                                                       AuditEvent.actor_role == "regional_operator"))


def test_accepting_a_record_links_its_identifiers_once(client, platform, clerk, world):
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    accepted = client.post(f"{URL}/{world['record_review']}/accept", json={"note": "same phone"}, headers=operator)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["linked"] == ["mrn:inst-test-01"] and accepted.json()["merge_id"] is None
    assert accepted.json()["review"]["status"] == "accepted" and accepted.json()["review"]["note"] == "same phone"
    found = client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "HIS-0042"}, headers=clerk)
    assert found.status_code == 200 and found.json()["ehc_id"] == world["card"]
    problem(client.post(f"{URL}/{world['record_review']}/accept", json={}, headers=operator), 409,
            "review_already_decided")
    problem(client.post(f"{URL}/{world['record_review']}/reject", json={"reason": "x"}, headers=operator), 409,
            "review_already_decided")


def test_accepting_two_people_merges_them_reversibly(client, platform, clerk, world):
    admin = make_staff(platform, client, "platform_admin", None)
    accepted = client.post(f"{URL}/{world['pair_review']}/accept", json={}, headers=admin)
    assert accepted.status_code == 200, accepted.text
    merge_id = accepted.json()["merge_id"]
    twin_person = person_of(platform, world["twin"])
    with platform.db.session() as session:
        merge = session.get(Merge, merge_id)
        assert merge.review_id == world["pair_review"]
        assert merge.source_person_id == twin_person  # the left person goes into the right one by default
    twin_doc = TWIN["document"]["number"]
    assert client.get("/api/v1/mpi/persons", params={"system": "doc:01", "value": twin_doc},
                      headers=clerk).json()["ehc_id"] == world["card"]
    assert client.post(f"/api/v1/mpi/merges/{merge_id}/undo", json={"reason": "twins"},
                       headers=admin).status_code == 200
    assert client.get("/api/v1/mpi/persons", params={"system": "doc:01", "value": twin_doc},
                      headers=clerk).json()["ehc_id"] == world["twin"]


def test_rejecting_needs_a_reason_and_links_nothing(client, platform, clerk, world):
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    problem(client.post(f"{URL}/{world['record_review']}/reject", json={"reason": ""}, headers=operator), 422,
            "reason_required")
    rejected = client.post(f"{URL}/{world['record_review']}/reject", json={"reason": "another man"}, headers=operator)
    assert rejected.status_code == 200 and rejected.json()["review"]["status"] == "rejected"
    assert rejected.json()["review"]["decided_by"]
    problem(client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "HIS-0042"}, headers=clerk), 404,
            "person_not_found")


def test_two_concurrent_decisions_one_wins(platform, world):
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def decide(verb: str) -> None:
        with platform.db.session() as session:
            ctx = platform.ctx(session, Actor.system(operator="reviewer-" + verb))
            barrier.wait()
            try:
                if verb == "accept":
                    review.accept(ctx, world["record_review"])
                else:
                    review.reject(ctx, world["record_review"], "different")
                session.commit()
                outcomes.append(verb)
            except Conflict as conflict:
                session.rollback()
                outcomes.append(conflict.code)

    threads = [threading.Thread(target=decide, args=(verb,)) for verb in ("accept", "reject")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) in (["accept", "review_already_decided"], ["reject", "review_already_decided"]), outcomes


# -- the staff pages ----------------------------------------------------------------------------------

def staff_cookie(client, platform, role: str, institution: str | None = None, region: str | None = None) -> None:
    headers = make_staff(platform, client, role, institution, region=region)
    client.cookies.set("ehc_staff", headers["Authorization"].split()[1])


def test_the_review_pages_decide_with_a_csrf_token(client, platform, world):
    staff_cookie(client, platform, "regional_operator", region="510100")
    listing = client.get("/staff/mpi/reviews?lang=en")
    assert listing.status_code == 200, listing.text
    assert f'id="review-{world["record_review"]}"' in listing.text
    assert f'id="review-{world["far_review"]}"' not in listing.text  # another region's
    detail = client.get(f"/staff/mpi/reviews/{world['record_review']}?lang=en")
    assert detail.status_code == 200 and "欧**国" in detail.text and "欧阳建国" not in detail.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', detail.text).group(1)
    action = f"/staff/mpi/reviews/{world['record_review']}/reject"
    assert client.post(action, data={"reason": "two men"}).status_code == 403  # no token: nothing done
    refused = client.post(action, data={"reason": "", "csrf_token": token})
    assert refused.status_code == 422 and 'id="error-summary"' in refused.text
    done = client.post(action, data={"reason": "two men", "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    with platform.db.session() as session:
        assert session.get(MatchReview, world["record_review"]).status == "rejected"
    again = client.post(action, data={"reason": "again", "csrf_token": token})
    assert again.status_code == 409 and 'id="error-summary"' in again.text
    # A hospital's doctor may not open the queue at all.
    staff_cookie(client, platform, "doctor", "inst-test-01")
    assert client.get("/staff/mpi/reviews").status_code == 403


def test_review_queue_in_chromium(live_server, sqlite_platform, chromium):
    from playwright.sync_api import expect

    from ehc.accounts import service as accounts
    from ehc.cards import service as cards

    platform = sqlite_platform
    make_institution(platform, "inst-test-01", uscc="12510000MB1234567X", name="Test People's Hospital",
                     kind="hospital", region_code="510104")
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username="operator.cd", password="correct horse battery",
                              role="regional_operator", region_code="510100", display_name="成都运营")
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        holder = cards.register(ctx, cards.Registration(
            name=HOLDER["name"], document_type="01", document_number=HOLDER["document"]["number"], sex="1",
            birth_date=date(1970, 1, 2), phone=HOLDER["phone"], address=HOLDER["address"]))
        person_id = holder.person.id
    review_id = queue(platform, right=person_id, institution="inst-test-01", record=Record(
        name="欧阳建国", sex="1", birth_date=date(1970, 1, 2), phone="13912340002",
        identifiers=(Identifier("mrn:inst-test-01", "HIS-0042"),)))

    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server}/staff/mpi/reviews")
    page.wait_for_url("**/staff/sign-in**")
    page.locator("#username").fill("operator.cd")
    page.locator("#password").fill("correct horse battery")
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url("**/staff/mpi/reviews")
    expect(page.locator("h1")).to_have_text(ZH["mpi_reviews.title"])
    page.locator(f"#review-{review_id} a").click()
    page.wait_for_url(f"**/staff/mpi/reviews/{review_id}")
    expect(page.locator("#field-name td[data-side=left]")).to_have_text("欧**国")
    expect(page.locator("#field-name td[data-side=right]")).to_have_text("欧**国")
    expect(page.locator("#field-phone td[data-side=right]")).to_have_text("139****0002")
    expect(page.locator("#field-sex td[data-side=right]")).to_have_text("男")
    expect(page.locator("#field-birth_date td")).to_contain_text(
        ["1970-01-**", "1970-01-**", f"{ZH['mpi_reviews.level_exact']} · 支持同一人 +8.7"])
    expect(page.locator("#review-grade")).to_contain_text("93.0%")
    expect(page.locator("#review-why")).to_have_text(ZH["mpi_reviews.why_no_document"])
    assert "Test People's Hospital" in page.locator("dl.facts").inner_text()  # its name, not its id
    page.screenshot(path=str(ARTIFACTS / "mpi-review-zh.png"), full_page=True)
    assert "欧阳建国" not in page.content()
    page.locator("#note").fill("电话一致")
    page.locator("#accept").click()
    page.wait_for_url(f"**/staff/mpi/reviews/{review_id}")
    expect(page.locator("#review-status")).to_have_text(ZH["mpi_reviews.status_accepted"])
    expect(page.locator(".notice-flash")).to_contain_text(str(review_id))
    expect(page.locator("#accept")).to_have_count(0)
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        from ehc.mpi import service as mpi

        assert mpi.find_by_identifier(ctx, Identifier("mrn:inst-test-01", "HIS-0042")).id == person_id
    context.close()
