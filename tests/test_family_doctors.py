"""Family doctors (issue 15): teams, packages, contracts, services delivered, referrals, coverage,
through the API on SQLite and PostgreSQL; the limits (one active contract per person, a lead doctor's
capacity) under many concurrent clients of a live server."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx
import pytest
from appointments_world import add_department, publish
from argon2 import PasswordHasher
from factories import PASSWORD, bearer, card_holder, make_staff, person, uscc
from sqlalchemy import func, select
from test_cli import _env, run

from ehc.accounts import service as accounts
from ehc.appointments import service as appointments
from ehc.cards import service as cards
from ehc.family_doctors import service as fd
from ehc.institutions import service as institutions
from ehc.kit.clock import china_today
from ehc.kit.context import Actor
from ehc.mpi import service as mpi

PROBLEM = "application/problem+json"
API = "/api/v1/family-doctors"
HTN_SERVICES = [{"code": "bp_follow_up", "kind": "follow_up", "name": "Blood pressure follow-up", "yearly_count": 4}]


@dataclass
class Centre:
    id: str
    hospital: str
    staff: dict[str, str] = field(default_factory=dict)  # role name -> staff id
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    team: str = ""
    other_team: str = ""
    basic: str = ""
    htn: str = ""


def _staff(platform, client, ctx, centre: Centre, name: str, role: str, institution: str) -> None:  # noqa: ANN001
    account = accounts.create_staff(ctx, username=f"fd.{name}", password=PASSWORD, role=role,
                                    institution_id=institution, display_name=name)
    centre.staff[name] = account.id


def _ok(answer, *statuses: int) -> dict:  # noqa: ANN001
    assert answer.status_code in (statuses or (200, 201)), answer.text
    return answer.json()


def _refused(answer, status: int, code: str) -> None:  # noqa: ANN001
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["code"] == code, answer.text


@pytest.fixture
def centre(platform, client, monkeypatch) -> Centre:  # noqa: ANN001
    # Passwords are not what this module tests: the cheapest argon2id keeps the sign-ins fast.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        made = institutions.create_institution(session, uscc=uscc("510104", 11), name="锦江区社区卫生服务中心",
                                               kind="community_centre", region_code="510104")
        hospital = institutions.create_institution(session, uscc=uscc("510104", 12), name="锦江区人民医院",
                                                   kind="hospital", region_code="510104", level="3A")
        c = Centre(made.id, hospital.id)
        for name, role, inst in (("admin", "institution_admin", made.id), ("lead", "family_doctor", made.id),
                                 ("lead2", "family_doctor", made.id), ("nurse", "nurse", made.id),
                                 ("clerk", "window_clerk", made.id), ("specialist", "doctor", hospital.id),
                                 ("outsider", "family_doctor", hospital.id)):
            _staff(platform, client, ctx, c, name, role, inst)
    for name in c.staff:
        c.headers[name] = bearer(_ok(client.post("/api/v1/auth/staff/token", json={
            "username": f"fd.{name}", "password": PASSWORD}))["access_token"])
    admin = c.headers["admin"]
    c.team = _ok(client.post(f"{API}/teams", json={"institution_id": c.id, "name": "王医生团队",
                                                   "lead_staff_id": c.staff["lead"], "areas": ["510104"]},
                             headers=admin))["id"]
    _ok(client.post(f"{API}/teams/{c.team}/members", json={"staff_id": c.staff["nurse"], "role": "nurse"},
                    headers=admin))
    _ok(client.post(f"{API}/teams/{c.team}/members", json={"staff_id": c.staff["specialist"], "role": "specialist"},
                    headers=admin))
    c.other_team = _ok(client.post(f"{API}/teams", json={"institution_id": c.id, "name": "李医生团队",
                                                         "lead_staff_id": c.staff["lead2"], "areas": ["510104"]},
                                   headers=admin))["id"]
    c.basic = _ok(client.post(f"{API}/packages", json={
        "code": "basic", "kind": "basic", "name": "基本公共卫生服务包", "institution_id": c.id,
        "services": [{"code": "health_check", "kind": "check_up", "name": "Yearly check-up", "yearly_count": 1}]},
        headers=admin))["id"]
    c.htn = _ok(client.post(f"{API}/packages", json={
        "code": "htn", "kind": "hypertension", "name": "高血压服务包", "institution_id": c.id,
        "services": HTN_SERVICES, "eligibility": {"conditions": ["hypertension"], "min_age": 18},
        "price_public_fen": 6000, "price_insurance_fen": 3000, "price_resident_fen": 1000}, headers=admin))["id"]
    return c


RESIDENT = person("陈美华", date(1950, 3, 8), 61, False, phone="13912349001")


def test_teams_packages_and_a_resident_signing_on_the_website(client, platform, centre) -> None:  # noqa: ANN001
    team = _ok(client.get(f"{API}/teams/{centre.team}", headers=centre.headers["admin"]))
    assert {m["role"] for m in team["members"]} == {"lead_gp", "nurse", "specialist"}
    assert team["areas"] == ["510104"] and team["capacity"] == 2000 and team["contracted"] == 0
    # A doctor of another institution cannot lead a centre's team; a clerk is no nurse.
    _refused(client.post(f"{API}/teams", json={"institution_id": centre.id, "name": "x",
                                               "lead_staff_id": centre.staff["outsider"]},
                         headers=centre.headers["admin"]), 404, "staff_not_found")
    _refused(client.post(f"{API}/teams/{centre.team}/members", json={"staff_id": centre.staff["clerk"],
                                                                    "role": "nurse"},
                         headers=centre.headers["admin"]), 409, "member_role_mismatch")
    _refused(client.post(f"{API}/teams", json={"institution_id": centre.hospital, "name": "x",
                                               "lead_staff_id": centre.staff["lead"]},
                         headers=centre.headers["admin"]), 404, "institution_not_found")

    ehc_id, me = card_holder(client, platform, RESIDENT)
    offer = _ok(client.get("/api/v1/me/family-doctor/teams", headers=me))
    assert {t["id"] for t in offer} == {centre.team, centre.other_team}
    # Not eligible for the hypertension package until the condition is on record.
    _refused(client.post("/api/v1/me/family-doctor/contracts", json={"team_id": centre.team,
                                                                     "package_ids": [centre.basic, centre.htn]},
                         headers=me), 409, "package_not_eligible")
    _ok(client.post(f"{API}/conditions", json={"ehc_id": ehc_id, "code": "hypertension"},
                    headers=centre.headers["lead"]))
    signed = _ok(client.post("/api/v1/me/family-doctor/contracts", json={
        "team_id": centre.team, "package_ids": [centre.basic, centre.htn]}, headers={**me, "Idempotency-Key": "s1"}))
    again = client.post("/api/v1/me/family-doctor/contracts", json={
        "team_id": centre.team, "package_ids": [centre.basic, centre.htn]}, headers={**me, "Idempotency-Key": "s1"})
    assert again.status_code == 201 and again.json()["id"] == signed["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert signed["status"] == "active" and signed["channel"] == "0500" and signed["signed_by_kind"] == "self"
    assert date.fromisoformat(signed["end_date"]) - date.fromisoformat(signed["start_date"]) == timedelta(days=364)
    assert (signed["price_public_fen"], signed["price_insurance_fen"], signed["price_resident_fen"]) == (6000, 3000, 1000)
    assert {p["code"]: p["promised"] for p in signed["progress"]} == {"health_check": 1, "bp_follow_up": 4}
    # One team at a time.
    _refused(client.post("/api/v1/me/family-doctor/contracts", json={"team_id": centre.other_team}, headers=me),
             409, "contract_exists")
    mine = _ok(client.get("/api/v1/me/family-doctor", headers=me))
    assert [c["id"] for c in mine] == [signed["id"]] and mine[0]["relation"] == "self"

    # The window finds it by card; a clerk of the hospital next door does not.
    found = _ok(client.post(f"{API}/contracts/lookup", json={"ehc_id": ehc_id}, headers=centre.headers["clerk"]))
    assert [c["id"] for c in found] == [signed["id"]] and found[0]["resident_name"] == RESIDENT["name"]
    _refused(client.get(f"{API}/contracts/{signed['id']}", headers=centre.headers["outsider"]), 404,
             "contract_not_found")
    # Termination needs a reason; the resident's access log shows the team's reads.
    _refused(client.post(f"/api/v1/me/family-doctor/contracts/{signed['id']}/terminate", json={"reason": " "},
                         headers=me), 422, "reason_required")
    ended = _ok(client.post(f"/api/v1/me/family-doctor/contracts/{signed['id']}/terminate",
                            json={"reason": "moving to Shenzhen"}, headers=me))
    assert ended["status"] == "terminated" and ended["end_reason"] == "moving to Shenzhen"
    purposes = {e["purpose"] for e in _ok(client.get("/api/v1/me/access-log", headers=me))["items"]}
    assert {"family_doctor.contract", "family_doctor.condition"} <= purposes
    events = _ok(client.get(f"{API}/contracts/{signed['id']}/events", headers=centre.headers["lead"]))
    assert [(e["action"], e["actor_kind"], e["channel"]) for e in events] == [
        ("sign", "resident", "0500"), ("terminate", "resident", "0500")]


def test_a_guardian_signs_for_a_family_member(client, platform, centre) -> None:  # noqa: ANN001
    _, me = card_holder(client, platform, person("周立新", date(1980, 1, 1), 62, True, phone="13912349002"))
    child = _ok(client.post("/api/v1/me/family", json={**person("周小宝", date(2021, 5, 5), 63, True),
                                                       "relation": "child"}, headers=me))["ehc_id"]
    signed = _ok(client.post("/api/v1/me/family-doctor/contracts", json={"team_id": centre.team, "ehc_id": child},
                             headers=me))
    assert signed["signed_by_kind"] == "guardian"
    family = _ok(client.get("/api/v1/me/family-doctor", headers=me))
    assert [(c["id"], c["relation"]) for c in family] == [(signed["id"], "child")]
    stranger, _ = card_holder(client, platform, person("吴海", date(1975, 2, 2), 64, True, phone="13912349003"))
    _refused(client.post("/api/v1/me/family-doctor/contracts", json={"team_id": centre.team, "ehc_id": stranger},
                         headers=me), 404, "card_not_found")


def test_home_signing_on_the_residents_dynamic_code_then_follow_ups(client, platform, centre) -> None:  # noqa: ANN001
    ehc_id, me = card_holder(client, platform, RESIDENT)
    lead = centre.headers["lead"]
    _ok(client.post(f"{API}/conditions", json={"ehc_id": ehc_id, "code": "hypertension"}, headers=lead))
    # A team member signs only on the resident's consent: their dynamic code.
    _refused(client.post(f"{API}/contracts", json={"team_id": centre.team, "ehc_id": ehc_id}, headers=lead), 422,
             "consent_code_required")
    code = _ok(client.post("/api/v1/me/qr/dynamic", headers=me))["text"]
    signed = _ok(client.post(f"{API}/contracts", json={"team_id": centre.team, "code": code,
                                                       "package_ids": [centre.basic, centre.htn]}, headers=lead))
    assert signed["signed_by_kind"] == "home" and signed["channel"] == "0300" and signed["consent_card_use"]
    uses = _ok(client.get("/api/v1/me/card-uses", headers=me))
    assert uses[0]["channel"] == "0300" and uses[0]["scene"] == "000000"
    # Another team's doctor sees nothing of it.
    contract = signed["id"]
    _refused(client.post(f"{API}/contracts/{contract}/services", json={"service_code": "bp_follow_up"},
                         headers=centre.headers["outsider"]), 404, "contract_not_found")

    # Four follow-ups a year; the fifth is refused. The visit's card use is recorded with the first.
    visit = _ok(client.post("/api/v1/me/qr/dynamic", headers=me))["text"]
    first = _ok(client.post(f"{API}/contracts/{contract}/services", json={
        "service_code": "bp_follow_up", "systolic_mmhg": 150, "diastolic_mmhg": 95, "weight_kg_x10": 612,
        "notes": "amlodipine 5 mg", "code": visit}, headers={**centre.headers["nurse"], "Idempotency-Key": "v1"}))
    assert first["card_use_id"] and first["notes"] == "amlodipine 5 mg" and first["staff_id"] == centre.staff["nurse"]
    for _ in range(3):
        _ok(client.post(f"{API}/contracts/{contract}/services", json={"service_code": "bp_follow_up",
                                                                     "systolic_mmhg": 138}, headers=lead))
    _refused(client.post(f"{API}/contracts/{contract}/services", json={"service_code": "bp_follow_up"},
                         headers=lead), 409, "service_count_used")
    _refused(client.post(f"{API}/contracts/{contract}/services", json={"service_code": "nope"}, headers=lead),
             422, "service_not_in_contract")
    _refused(client.post(f"{API}/contracts/{contract}/services", json={"service_code": "health_check",
                                                                      "systolic_mmhg": 900}, headers=lead),
             422, "validation_failed")
    mine = _ok(client.get("/api/v1/me/family-doctor", headers=me))[0]
    progress = {p["code"]: p for p in mine["progress"]}
    assert progress["bp_follow_up"]["done"] == 4 and progress["health_check"]["done"] == 0
    with platform.db.session() as session:
        # Notes are sealed at rest.
        assert "amlodipine" not in str(session.get(fd.Delivery, first["id"]).notes_sealed)
        # Late in the term the yearly check-up is overdue: it shows on the team's work list.
        ctx = platform.ctx(session, Actor.system())
        work = fd.work_list(ctx, centre.team, day=china_today() + timedelta(days=364))
        assert work.overdue_total == 1 and [p.code for p in work.overdue[0].overdue] == ["health_check"]
        assert work.overdue[0].name == RESIDENT["name"]
    assert _ok(client.get(f"{API}/teams/{centre.team}/work-list", headers=lead))["overdue_total"] == 0


def test_referral_books_the_hospitals_referral_quota_and_the_resident_sees_it(client, platform, centre) -> None:  # noqa: ANN001
    ehc_id, me = card_holder(client, platform, RESIDENT)
    contract = _ok(client.post(f"{API}/contracts", json={"team_id": centre.team, "ehc_id": ehc_id},
                               headers=centre.headers["clerk"]))
    assert contract["signed_by_kind"] == "window" and contract["channel"] == "0100"
    refer = f"{API}/contracts/{contract['id']}/referrals"
    body = {"to_institution_id": centre.hospital, "department_code": "0304", "reason": "BP uncontrolled on two drugs"}
    # Nothing published at the hospital yet: a clear refusal, and no referral is left behind.
    _refused(client.post(refer, json=body, headers=centre.headers["lead"]), 409, "no_referral_place")
    with platform.db.session() as session:
        assert fd.referrals(platform.ctx(session, Actor.system()), fd.get_contract(
            platform.ctx(session, Actor.system()), contract["id"])) == []
    # The hospital publishes one 15-minute period tomorrow: one referral place, one online place.
    add_department(platform, centre.hospital, "0304")
    scheduler = make_staff(platform, client, "institution_admin", centre.hospital)
    session_row = publish(client, scheduler, department_code="0304", start="08:00", end="08:15", quota_online=1,
                          quota_window=0, quota_referral=1, referral_release_hours=0)
    period_id = session_row["periods"][0]["id"]
    booked = _ok(client.post(refer, json=body, headers=centre.headers["lead"]))
    assert booked["status"] == "booked" and booked["booking_ref"].startswith("A")
    # The resident sees the booking, in the referral quota, carrying the referral.
    mine = _ok(client.get("/api/v1/me/appointments", headers=me))
    assert len(mine) == 1
    seen = mine[0]
    assert seen["reference"] == booked["booking_ref"] and seen["status"] == "booked"
    assert seen["period_id"] == period_id and seen["pool"] == "referral"
    assert seen["institution_id"] == centre.hospital and seen["department_code"] == "0304"
    assert seen["referral"] == {"referral_id": booked["id"], "from_team_id": centre.team,
                                "from_institution_id": centre.id, "reason": body["reason"]}
    # The receiving hospital's window sees why the resident comes.
    at_hospital = make_staff(platform, client, "window_clerk", centre.hospital)
    theirs = _ok(client.get(f"/api/v1/appointments/bookings/{booked['booking_ref']}", headers=at_hospital))
    assert theirs["referral"]["reason"] == body["reason"] and theirs["pool"] == "referral"
    client.cookies.set("ehc_resident", me["Authorization"].removeprefix("Bearer "))  # the pages' sign-in
    try:
        page = client.get("/me/appointments")
        assert 'class="booking-referral"' in page.text and booked["booking_ref"] in page.text
        assert body["reason"] in client.get(f"/me/appointments/{booked['booking_ref']}").text
    finally:
        client.cookies.clear()
    detail = _ok(client.get(f"/api/v1/me/appointments/{booked['booking_ref']}", headers=me))
    assert [e["action"] for e in detail["history"] if e["action"] in ("hold", "confirm")] == ["hold", "confirm"]
    assert "referral quota" in detail["history"][0]["reason"] and booked["id"] in detail["history"][0]["reason"]
    # The period's referral place is taken: a family doctor at the hospital sees none left, the online one stays.
    period = _ok(client.get(f"/api/v1/appointments/sessions/{session_row['id']}", headers=centre.headers["outsider"]))
    assert period["periods"][0]["free"] == 0
    assert _ok(client.get(f"/api/v1/appointments/sessions/{session_row['id']}", headers=me))["periods"][0]["free"] == 1
    # The referral quota is full (an online place is not the referral's): the next referral is refused
    # with the clear problem, and the first referral and its booking are untouched.
    full = client.post(refer, json={**body, "reason": "second opinion"}, headers=centre.headers["lead"])
    _refused(full, 409, "no_referral_place")
    assert full.json()["department_code"] == "0304"
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        rows = fd.referrals(ctx, fd.get_contract(ctx, contract["id"]))
        assert [(r.status, r.booking_ref) for r in rows] == [("booked", booked["booking_ref"])]
    assert len(_ok(client.get("/api/v1/me/appointments", headers=me))) == 1
    _refused(client.post(refer, json={**body, "department_code": "99x"}, headers=centre.headers["lead"]), 422,
             "department_code_invalid")


def test_renewal_reminder_change_of_team_and_signed_terms_kept(client, platform, centre) -> None:  # noqa: ANN001
    ehc_id, me = card_holder(client, platform, RESIDENT)
    _ok(client.post(f"{API}/conditions", json={"ehc_id": ehc_id, "code": "hypertension"}, headers=centre.headers["lead"]))
    signed = _ok(client.post("/api/v1/me/family-doctor/contracts", json={
        "team_id": centre.team, "package_ids": [centre.htn]}, headers=me))
    # The centre raises the package's resident share: the signed contract keeps its terms.
    revised = _ok(client.post(f"{API}/packages/{centre.htn}/revise", json={
        "code": "htn", "kind": "hypertension", "name": "高血压服务包(2027)", "services": HTN_SERVICES,
        "eligibility": {"conditions": ["hypertension"]}, "price_resident_fen": 2500}, headers=centre.headers["admin"]))
    assert revised["replaces"] == centre.htn
    kept = _ok(client.get(f"{API}/contracts/{signed['id']}", headers=centre.headers["lead"]))
    assert kept["price_resident_fen"] == 1000 and kept["terms"][0]["package_id"] == centre.htn

    _refused(client.post(f"/api/v1/me/family-doctor/contracts/{signed['id']}/renew", headers=me), 409,
             "renewal_too_early")
    end = date.fromisoformat(signed["end_date"])
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        assert fd.run_daily(ctx, end - timedelta(days=31)).reminded == 0
        assert fd.run_daily(ctx, end - timedelta(days=30)).reminded == 1
        assert fd.run_daily(ctx, end - timedelta(days=29)).reminded == 0  # once
        texts = [m.text for m in accounts.outbox(session, platform.vault, phone=RESIDENT["phone"], limit=5)]
        assert any(end.isoformat() in t for t in texts)
        contract = session.get(fd.Contract, signed["id"])
        contract.start_date -= timedelta(days=340)
        contract.end_date -= timedelta(days=340)  # now within its last 30 days
    renewed = _ok(client.post(f"/api/v1/me/family-doctor/contracts/{signed['id']}/renew", headers=me))
    assert renewed["previous_id"] == signed["id"] and renewed["price_resident_fen"] == 2500
    assert renewed["terms"][0]["package_id"] == revised["id"]
    old = _ok(client.get(f"{API}/contracts/{signed['id']}", headers=centre.headers["lead"]))
    assert old["status"] == "renewed"

    _refused(client.post(f"/api/v1/me/family-doctor/contracts/{renewed['id']}/change-team", json={
        "team_id": centre.other_team, "reason": "dissatisfied"}, headers=me), 422, "change_reason_not_allowed")
    moved = _ok(client.post(f"/api/v1/me/family-doctor/contracts/{renewed['id']}/change-team", json={
        "team_id": centre.other_team, "reason": "moved"}, headers=me))
    assert moved["team_id"] == centre.other_team and moved["previous_id"] == renewed["id"]
    assert moved["end_date"] == renewed["end_date"]
    # The region's policy adds the reason: it is allowed from then on (a policy is data).
    with platform.db.session() as session:
        fd.set_policy(platform.ctx(session, Actor.system()), "510100", capacity_per_lead=1500,
                      change_reasons=["dissatisfied"])
    assert _ok(client.get(f"{API}/policies/510104"))["capacity_per_lead"] == 1500
    back = _ok(client.post(f"/api/v1/me/family-doctor/contracts/{moved['id']}/change-team", json={
        "team_id": centre.team, "reason": "dissatisfied"}, headers=me))
    assert back["team_id"] == centre.team


def test_coverage_per_team_and_region(client, platform, centre) -> None:  # noqa: ANN001
    old_id, _ = card_holder(client, platform, RESIDENT)  # 1950: 65+
    child_id, _ = card_holder(client, platform, person("孙小雨", china_today().replace(month=1, day=1), 65, False,
                                                         phone="13912349004"))
    card_holder(client, platform, person("钱大勇", date(1990, 7, 7), 66, True, phone="13912349005"))
    clerk = centre.headers["clerk"]
    _ok(client.post(f"{API}/conditions", json={"ehc_id": old_id, "code": "hypertension"}, headers=centre.headers["lead"]))
    _ok(client.post(f"{API}/contracts", json={"team_id": centre.team, "ehc_id": old_id, "package_ids": [centre.htn]},
                    headers=clerk))
    _ok(client.post(f"{API}/contracts", json={"team_id": centre.other_team, "ehc_id": child_id}, headers=clerk))
    coverage = _ok(client.get(f"{API}/coverage/centres/{centre.id}", headers=centre.headers["admin"]))
    rows = {r["key"]: r for r in coverage["rows"]}
    team = rows[centre.team]
    assert (team["residents"], team["contracted"], team["elderly"], team["elderly_contracted"]) == (3, 1, 1, 1)
    assert (team["hypertension"], team["hypertension_contracted"], team["services_promised"]) == (1, 1, 4)
    assert rows[centre.other_team]["children_contracted"] == 1
    assert coverage["total"]["contracted"] == 2 and coverage["total"]["residents"] == 3
    operator = {}
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username="fd.operator", password=PASSWORD,
                              role="regional_operator", region_code="510100")
    operator = bearer(_ok(client.post("/api/v1/auth/staff/token", json={"username": "fd.operator",
                                                                        "password": PASSWORD}))["access_token"])
    region = _ok(client.get(f"{API}/coverage/regions/510100", headers=operator))
    assert [r["key"] for r in region["rows"]] == [centre.id] and region["total"]["contracted"] == 2
    _refused(client.get(f"{API}/coverage/regions/440300", headers=operator), 403, "region_out_of_scope")

    # The statistics console shows the same coverage to the region's operator, small numbers protected.
    console = _ok(client.get("/api/v1/statistics/coverage", headers=operator))
    assert console["region"] == "510100" and [c["institution_id"] for c in console["centres"]] == [centre.id]
    assert console["total"]["figures"]["residents"] == {"covered": "<5", "population": "<5", "share": "—"}
    _refused(client.get("/api/v1/statistics/coverage?region=440300", headers=operator), 403, "region_out_of_scope")
    client.cookies.set("ehc_staff", operator["Authorization"].split()[1])
    for lang, title in (("en", "Family-doctor coverage"), ("zh", "家庭医生签约覆盖")):
        page = client.get(f"/staff/statistics/coverage?lang={lang}")
        assert page.status_code == 200 and f"<h1>{title}</h1>" in page.text, page.text
        assert 'id="coverage"' in page.text and "&lt;5 / &lt;5" in page.text
    assert 'id="coverage-link"' in client.get("/staff/statistics?lang=en").text
    client.cookies.clear()


def test_outreach_lists_the_areas_uncontracted_residents_masked(client, platform, centre) -> None:  # noqa: ANN001
    signed_id, _ = card_holder(client, platform, RESIDENT)
    _, other = card_holder(client, platform, person("郑晓燕", date(1948, 4, 4), 68, False, phone="13912349007"))
    card_holder(client, platform, person("冯志强", date(1966, 6, 6), 69, True, region="440305", phone="13912349008"))
    _ok(client.post(f"{API}/contracts", json={"team_id": centre.team, "ehc_id": signed_id},
                    headers=centre.headers["clerk"]))
    found = _ok(client.get(f"{API}/teams/{centre.team}/outreach", headers=centre.headers["nurse"]))
    assert [(i["masked_name"], i["birth_year"]) for i in found] == [("郑*燕", 1948)]
    _refused(client.get(f"{API}/teams/{centre.team}/outreach", headers=centre.headers["outsider"]), 404,
             "team_not_found")
    log = _ok(client.get("/api/v1/me/access-log", headers=other))["items"]
    assert any(e["purpose"] == "family_doctor.outreach" for e in log)


def test_a_merge_carries_the_contract_and_an_unmerge_brings_it_back(client, platform, centre) -> None:  # noqa: ANN001
    a, _ = card_holder(client, platform, RESIDENT)
    b, _ = card_holder(client, platform, person("陈美花", date(1950, 3, 8), 67, False, phone="13912349006"))
    clerk = centre.headers["clerk"]
    ca = _ok(client.post(f"{API}/contracts", json={"team_id": centre.team, "ehc_id": a}, headers=clerk))
    cb = _ok(client.post(f"{API}/contracts", json={"team_id": centre.other_team, "ehc_id": b}, headers=clerk))
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        source = mpi.resolve(ctx, cards.get_card(ctx, a).person_id)
        target = mpi.resolve(ctx, cards.get_card(ctx, b).person_id)
        merge = mpi.merge(ctx, source, target, "duplicate")
        merge_id = merge.id
    with platform.db.session() as session:
        ended = session.get(fd.Contract, ca["id"])
        assert ended.status == "terminated" and ended.active_person_id is None  # the target keeps theirs
        assert session.get(fd.Contract, cb["id"]).status == "active"
    with platform.db.session() as session:
        mpi.unmerge(platform.ctx(session, Actor.system()), merge_id, "two people")
    with platform.db.session() as session:
        back = session.get(fd.Contract, ca["id"])
        assert back.status == "active" and back.active_person_id == back.person_id


# -- limits under races (many concurrent clients; PostgreSQL and SQLite) ------------------------------------

def _live_client_cards(client, clerk: dict, count: int, first: int) -> list[str]:  # noqa: ANN001
    names = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"
    return [_ok(client.post("/api/v1/cards", json=person(f"居民{names[i]}", date(1960, 1, 1) + timedelta(days=i),
                                                          first + i, i % 2 == 0), headers=clerk))["ehc_id"]
            for i in range(count)]


def test_a_lead_doctors_capacity_holds_under_concurrent_signatures(live_url, client, platform, centre) -> None:  # noqa: ANN001
    with platform.db.session() as session:
        fd.set_policy(platform.ctx(session, Actor.system()), "510104", capacity_per_lead=5)
    clerk = centre.headers["clerk"]
    ehc_ids = _live_client_cards(client, clerk, 16, 100)

    def sign(ehc_id: str) -> httpx.Response:
        return httpx.post(f"{live_url}{API}/contracts", json={"team_id": centre.team, "ehc_id": ehc_id},
                          headers=clerk, timeout=120)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(sign, ehc_ids))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 5 + [409] * 11, [a.text for a in answers if a.status_code not in (201, 409)]
    assert all(a.json()["code"] == "team_full" for a in answers if a.status_code == 409)
    with platform.db.session() as session:
        assert fd.repo.count_active_for_lead(session, centre.staff["lead"]) == 5


def test_referral_places_hold_under_concurrent_referrals(live_url, client, platform, centre) -> None:  # noqa: ANN001
    # Two 15-minute periods with two referral places each; ten team members' referrals at once.
    add_department(platform, centre.hospital, "0304")
    scheduler = make_staff(platform, client, "institution_admin", centre.hospital)
    session_row = publish(client, scheduler, department_code="0304", start="08:00", end="08:30", quota_online=1,
                          quota_window=0, quota_referral=2, referral_release_hours=0)
    clerk = centre.headers["clerk"]
    contracts = [_ok(client.post(f"{API}/contracts", json={"team_id": centre.team, "ehc_id": e}, headers=clerk))["id"]
                 for e in _live_client_cards(client, clerk, 10, 300)]

    def refer(contract_id: str) -> httpx.Response:
        return httpx.post(f"{live_url}{API}/contracts/{contract_id}/referrals", headers=centre.headers["lead"],
                          json={"to_institution_id": centre.hospital, "department_code": "0304", "reason": "review"},
                          timeout=120)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(refer, contracts))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 4 + [409] * 6, [a.text for a in answers if a.status_code not in (201, 409)]
    assert all(a.json()["code"] == "no_referral_place" for a in answers if a.status_code == 409)
    with platform.db.session() as session:
        periods = session.scalars(select(appointments.Period).where(
            appointments.Period.session_id == session_row["id"])).all()
        assert sorted((p.used_referral, p.used_online) for p in periods) == [(2, 0), (2, 0)]
        bookings = session.scalars(select(appointments.Booking).where(
            appointments.Booking.session_id == session_row["id"])).all()
        assert len(bookings) == 4 and {b.status for b in bookings} == {"booked"}
        assert sorted(b.reference for b in bookings) == sorted(a.json()["booking_ref"] for a in answers
                                                               if a.status_code == 201)
        assert session.scalar(select(func.count()).select_from(fd.Referral)) == 4  # the refused left nothing


def test_one_active_contract_per_person_under_concurrent_signatures(live_url, client, platform, centre) -> None:  # noqa: ANN001
    clerk = centre.headers["clerk"]
    ehc_id = _live_client_cards(client, clerk, 1, 200)[0]
    teams = [centre.team, centre.other_team] * 6

    def sign(team: str) -> httpx.Response:
        return httpx.post(f"{live_url}{API}/contracts", json={"team_id": team, "ehc_id": ehc_id}, headers=clerk,
                          timeout=120)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(sign, teams))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 11, [a.text for a in answers if a.status_code not in (201, 409)]
    assert all(a.json()["code"] == "contract_exists" for a in answers if a.status_code == 409)
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(fd.Contract)) == 1


def test_cli_daily_job_policy_and_coverage(client, platform, settings, centre) -> None:  # noqa: ANN001
    ehc_id, _ = card_holder(client, platform, RESIDENT)
    signed = _ok(client.post(f"{API}/contracts", json={"team_id": centre.team, "ehc_id": ehc_id},
                             headers=centre.headers["clerk"]))
    env = _env(settings)
    end = date.fromisoformat(signed["end_date"])
    first = json.loads(run(env, "family-doctors", "daily", "--day", (end - timedelta(days=30)).isoformat()).stdout)
    again = json.loads(run(env, "family-doctors", "daily", "--day", (end - timedelta(days=30)).isoformat()).stdout)
    assert (first["reminded"], again["reminded"]) == (1, 0)
    expired = json.loads(run(env, "family-doctors", "daily", "--day", (end + timedelta(days=1)).isoformat()).stdout)
    assert expired["expired"] == 1
    assert _ok(client.get(f"{API}/contracts/{signed['id']}", headers=centre.headers["clerk"]))["status"] == "ended"
    policy = json.loads(run(env, "family-doctors", "policy", "510104", "--capacity", "1800", "--reason", "moved").stdout)
    assert policy["capacity_per_lead"] == 1800 and policy["change_reasons"] == ["moved"]
    figures = json.loads(run(env, "family-doctors", "coverage", "--centre", centre.id).stdout)
    assert figures["total"]["residents"] == 1
    assert run(env, "family-doctors", "coverage", "--region", "5101", ok=False).returncode == 2
