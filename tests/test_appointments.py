"""Appointments (issue 14): schedules, holds and bookings, quotas, waitlist, suspension, limits, check-in,
merges and card cancellations; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from appointments_world import SHAPE, desk, later_today, publish, resident
from argon2 import PasswordHasher
from factories import make_staff

from ehc.accounts import service as accounts
from ehc.accounts import sms
from ehc.appointments import service as appointments
from ehc.cards.models import Card
from ehc.kit.clock import china_today, utcnow
from ehc.kit.codes import Channel
from ehc.kit.context import Actor
from ehc.mpi import service as mpi

TOMORROW = lambda: china_today() + timedelta(days=1)  # noqa: E731


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch):  # noqa: ANN001, ANN201
    # Passwords are not what this module tests: the cheapest argon2id keeps staff sign-ins fast.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def staff(platform, client, institution):  # noqa: ANN001, ANN201
    return desk(platform, client, institution)


def _period(session: dict, n: int = 0) -> int:
    return session["periods"][n]["id"]


def _texts(platform, phone: str) -> list[str]:  # noqa: ANN001
    with platform.db.session() as session:
        return [m.text for m in sms.outbox(session, platform.vault, phone=phone, limit=50)]


def _hold(client, headers, period_id, **extra):  # noqa: ANN001, ANN201
    return client.post("/api/v1/me/appointments", json={"period_id": period_id, **extra}, headers=headers)


def test_publish_from_templates_skips_holidays_and_publishes_once(client, staff):
    admin = staff["institution_admin"]
    monday = china_today() + timedelta(days=7 - china_today().weekday())  # next Monday
    template = client.post("/api/v1/appointments/templates", headers=admin,
                           json={**SHAPE, "department_code": "0300", "doctor": "李医生", "weekday": 0})
    assert template.status_code == 201, template.text
    closed = client.post("/api/v1/appointments/closures", headers=admin,
                         json={"day": (monday + timedelta(days=7)).isoformat(), "reason": "国庆节"})
    assert closed.status_code == 201
    body = {"first": monday.isoformat(), "last": (monday + timedelta(days=20)).isoformat()}
    published = client.post("/api/v1/appointments/publish", json=body, headers=admin)
    assert published.status_code == 200, published.text
    days = [s["day"] for s in published.json()]
    assert days == [monday.isoformat(), (monday + timedelta(days=14)).isoformat()]  # the holiday skipped
    assert client.post("/api/v1/appointments/publish", json=body, headers=admin).json() == []  # nothing twice
    found = client.get(f"/api/v1/appointments/sessions?department_code=0300&doctor=李医生"
                       f"&date_from={monday}&date_to={monday + timedelta(days=20)}").json()
    assert [s["day"] for s in found] == days and found[0]["free"] == 4 * 2  # online places, 4 periods
    assert found[0]["category_label_zh"] == "专家" and found[0]["fee_fen"] == 5000
    one = client.get(f"/api/v1/appointments/sessions/{found[0]['id']}").json()
    assert [p["local"][-5:] for p in one["periods"]] == ["08:00", "08:15", "08:30", "08:45"]
    # A one-off override of that Monday: the template's session is withdrawn (nobody booked it).
    override = client.post("/api/v1/appointments/sessions", headers=admin, json={
        **SHAPE, "start": "08:00", "end": "10:00", "department_code": "0300", "doctor": "李医生",
        "day": monday.isoformat(), "replace": True})
    assert override.status_code == 201, override.text
    assert client.get(f"/api/v1/appointments/sessions/{found[0]['id']}").json()["code"] == "session_not_found"


def test_resident_holds_confirms_and_sees_history(client, platform, staff):
    session = publish(client, staff["institution_admin"])
    ehc_id, me = resident(client, platform, 1)
    held = _hold(client, me, _period(session))
    assert held.status_code == 201, held.text
    booking = held.json()
    assert booking["status"] == "held" and booking["fhir_status"] == "pending" and booking["hold_expires_at"]
    assert booking["reference"].startswith("A") and booking["ehc_id"] == ehc_id and booking["pool"] == "online"
    ref = booking["reference"]
    done = client.post(f"/api/v1/me/appointments/{ref}/confirm", headers=me)
    assert done.status_code == 200 and done.json()["status"] == "booked"
    assert any(ref in t and "预约成功" in t for t in _texts(platform, "13900000001"))
    mine = client.get("/api/v1/me/appointments", headers=me).json()
    assert [b["reference"] for b in mine] == [ref]
    history = client.get(f"/api/v1/me/appointments/{ref}", headers=me).json()["history"]
    assert [e["action"] for e in history] == ["hold", "confirm", "notify"]
    assert history[0]["channel"] == "0500" and history[0]["actor_kind"] == "resident"
    # The free places went down by one.
    free = client.get(f"/api/v1/appointments/sessions/{session['id']}", headers=me).json()["periods"][0]["free"]
    assert free == 1
    # Another resident cannot see it.
    _, other = resident(client, platform, 2)
    assert client.get(f"/api/v1/me/appointments/{ref}", headers=other).json()["code"] == "booking_not_found"


def test_a_hold_frees_itself_and_the_sweep_catches_up(client, platform, staff):
    session = publish(client, staff["institution_admin"], quota_online=1)
    _, first = resident(client, platform, 3)
    _, second = resident(client, platform, 4)
    ref = _hold(client, first, _period(session)).json()["reference"]
    full = _hold(client, second, _period(session))
    assert full.status_code == 409 and full.json()["code"] == "period_full"
    assert full.json()["next_free"][0]["period_id"] == _period(session, 1)
    with platform.db.session() as db:  # the process was down when the hold fell due: the sweep catches up
        swept = appointments.sweep(platform.ctx(db, Actor.system()), utcnow() + timedelta(minutes=6))
    assert swept.expired == 1
    assert client.get(f"/api/v1/me/appointments/{ref}", headers=first).json()["status"] == "expired"
    late = client.post(f"/api/v1/me/appointments/{ref}/confirm", headers=first)
    assert late.status_code == 409 and late.json()["code"] == "booking_not_held"
    assert _hold(client, second, _period(session)).status_code == 201


def test_window_and_referral_quotas(client, platform, staff):
    # The referral quota stays for family doctors until its release (never, here: 0 hours before).
    session = publish(client, staff["institution_admin"], quota_online=1, quota_window=1, quota_referral=1,
                      referral_release_hours=0)
    people = [resident(client, platform, 10 + n)[0] for n in range(4)]
    _, me = resident(client, platform, 20)
    assert _hold(client, me, _period(session)).status_code == 201
    _, me2 = resident(client, platform, 21)
    assert _hold(client, me2, _period(session)).json()["code"] == "period_full"
    clerk, famdr = staff["window_clerk"], staff["family_doctor"]
    at_window = client.post("/api/v1/appointments/bookings", headers=clerk,
                            json={"period_id": _period(session), "ehc_id": people[0]})
    assert at_window.status_code == 201 and at_window.json()["status"] == "booked"
    assert at_window.json()["pool"] == "window" and at_window.json()["channel"] == "0100"
    again = client.post("/api/v1/appointments/bookings", headers=clerk,
                        json={"period_id": _period(session), "ehc_id": people[1]})
    assert again.json()["code"] == "period_full"
    referral = client.post("/api/v1/appointments/bookings", headers=famdr,
                           json={"period_id": _period(session), "ehc_id": people[1]})
    assert referral.status_code == 201 and referral.json()["pool"] == "referral"
    # Released a day before: a resident takes the referral place once online places are gone.
    released = publish(client, staff["institution_admin"], start="10:00", end="10:15", quota_online=1,
                       quota_window=0, quota_referral=1, referral_release_hours=48)
    assert _hold(client, me2, _period(released)).json()["pool"] == "online"
    _, me3 = resident(client, platform, 22)
    assert _hold(client, me3, _period(released)).json()["pool"] == "referral"


def test_kiosk_books_with_its_terminal_id(client, platform, staff, institution):
    from factories import hospital_system

    from ehc.institutions import service as institutions

    with platform.db.session() as db:
        ctx = platform.ctx(db, Actor.system())
        institutions.register_terminal(ctx, institutions.get_institution(ctx, institution), terminal_id="K01",
                                       role="kiosk", department_code="0300")
    session = publish(client, staff["institution_admin"], quota_kiosk=1)
    ehc_id, _ = resident(client, platform, 30)
    kiosk = hospital_system(platform, institution, "Kiosks")
    body = {"period_id": _period(session), "ehc_id": ehc_id}
    no_terminal = client.post("/api/v1/appointments/bookings", json=body, auth=kiosk,
                              headers={"X-EHC-Channel": "0200"})
    assert no_terminal.status_code == 422 and no_terminal.json()["code"] == "terminal_required"
    unknown = client.post("/api/v1/appointments/bookings", json={**body, "terminal_id": "K99"}, auth=kiosk,
                          headers={"X-EHC-Channel": "0200"})
    assert unknown.json()["code"] == "terminal_unknown"
    made = client.post("/api/v1/appointments/bookings", json={**body, "terminal_id": "K01"}, auth=kiosk,
                       headers={"X-EHC-Channel": "0200"})
    assert made.status_code == 201, made.text
    assert made.json()["pool"] == "kiosk" and made.json()["channel"] == "0200" and made.json()["status"] == "booked"


def test_cancel_and_move_until_the_cutoff(client, platform, staff):
    session = publish(client, staff["institution_admin"])
    _, me = resident(client, platform, 40)
    ref = _hold(client, me, _period(session)).json()["reference"]
    client.post(f"/api/v1/me/appointments/{ref}/confirm", headers=me)
    moved = client.post(f"/api/v1/me/appointments/{ref}/move", json={"period_id": _period(session, 2)}, headers=me)
    assert moved.status_code == 200 and moved.json()["period_id"] == _period(session, 2)
    assert moved.json()["reference"] == ref and moved.json()["status"] == "booked"
    periods = client.get(f"/api/v1/appointments/sessions/{session['id']}").json()["periods"]
    assert [p["free"] for p in periods] == [2, 2, 1, 2]
    cancelled = client.post(f"/api/v1/me/appointments/{ref}/cancel", json={"reason": "better"}, headers=me)
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["fhir_status"] == "cancelled"
    again = client.post(f"/api/v1/me/appointments/{ref}/cancel", json={}, headers=me)
    assert again.status_code == 409 and again.json()["code"] == "booking_not_live"
    # Within the cutoff (two hours before), online changes are refused; the window can still cancel.
    soon = later_today(60)
    if soon is None:
        pytest.skip("too close to midnight in China for a session later today")
    day, start, end = soon
    today = publish(client, staff["institution_admin"], day=day, start=start, end=end)
    ref = _hold(client, me, _period(today)).json()["reference"]
    late = client.post(f"/api/v1/me/appointments/{ref}/cancel", json={}, headers=me)
    assert late.status_code == 409 and late.json()["code"] == "cutoff_passed"
    by_clerk = client.post(f"/api/v1/appointments/bookings/{ref}/cancel", json={"reason": "phoned"},
                           headers=staff["window_clerk"])
    assert by_clerk.status_code == 200 and by_clerk.json()["status"] == "cancelled"


def test_family_member_bookings(client, platform, staff):
    session = publish(client, staff["institution_admin"])
    _, me = resident(client, platform, 50)
    child = client.post("/api/v1/me/family", headers=me, json={
        "name": "测试子", "document": {"type": "01", "number": __import__("residents").resident_id(
            born=date(2016, 2, 2), sequence=77)}, "sex": "1", "birth_date": "2016-02-02", "relation": "child"})
    assert child.status_code == 201, child.text
    held = _hold(client, me, _period(session), member=child.json()["ehc_id"])
    assert held.status_code == 201 and held.json()["for_family_member"] is True
    # Booking for myself too in the same session is fine (another person); a stranger's card is not found.
    assert _hold(client, me, _period(session)).status_code == 201
    stranger, _ = resident(client, platform, 51)
    foreign = _hold(client, me, _period(session, 1), member=stranger)
    assert foreign.status_code == 404 and foreign.json()["code"] == "card_not_found"
    assert len(client.get("/api/v1/me/appointments", headers=me).json()) == 2


def test_bad_input_is_a_problem_never_a_500(client, platform, staff, institution):
    from factories import make_institution, uscc

    from ehc.institutions import service as institutions

    session = publish(client, staff["institution_admin"])
    ehc_id, me = resident(client, platform, 60)
    assert _hold(client, me, 999999).json()["code"] == "period_not_found"
    past = client.post("/api/v1/appointments/sessions", headers=staff["institution_admin"],
                       json={**SHAPE, "department_code": "0300", "day": "2020-01-01"})
    assert past.status_code == 422 and past.json()["code"] == "day_in_past"
    bad_fee = client.post("/api/v1/appointments/sessions", headers=staff["institution_admin"],
                          json={**SHAPE, "department_code": "0300", "day": TOMORROW().isoformat(), "fee_fen": 1.5})
    assert bad_fee.status_code == 422
    # A period of another institution: out of the clerk's reach.
    other = make_institution(platform, "inst-other", uscc=uscc("440300", 9), name="Other", region_code="440300")
    with platform.db.session() as db:
        ctx = platform.ctx(db, Actor.system())
        institutions.add_department(ctx, institutions.get_institution(ctx, other), code="0300")
    other_admin = make_staff(platform, client, "institution_admin", other)
    theirs = publish(client, other_admin)
    refused = client.post("/api/v1/appointments/bookings", headers=staff["window_clerk"],
                          json={"period_id": _period(theirs), "ehc_id": ehc_id})
    assert refused.status_code == 404 and refused.json()["code"] == "period_not_found"
    wrong_department = client.post("/api/v1/appointments/sessions", headers=staff["institution_admin"],
                                   json={**SHAPE, "department_code": "0999", "day": TOMORROW().isoformat()})
    assert wrong_department.status_code == 404 and wrong_department.json()["code"] == "department_not_found"
    # A cancelled card books nothing.
    client.post(f"/api/v1/cards/{ehc_id}/cancel", json={"reason": "emigrated"}, headers=staff["window_clerk"])
    dead = client.post("/api/v1/appointments/bookings", headers=staff["window_clerk"],
                       json={"period_id": _period(session), "ehc_id": ehc_id})
    assert dead.status_code == 409 and dead.json()["code"] == "card_not_active"
    assert client.post("/api/v1/me/appointments/NOPE/confirm", headers=me).status_code in (401, 404)


def test_limits_per_person_and_no_show_rule(client, platform, staff, institution):
    admin = staff["institution_admin"]
    first = publish(client, admin)
    second = publish(client, admin, start="14:00", end="15:00")
    _, me = resident(client, platform, 70)
    assert _hold(client, me, _period(first)).status_code == 201
    twice = _hold(client, me, _period(first, 1))
    assert twice.status_code == 409 and twice.json()["code"] == "already_booked"
    same_day = _hold(client, me, _period(second))
    assert same_day.status_code == 409 and same_day.json()["code"] == "department_day_limit"
    assert same_day.json()["rule"] == "per_department_per_day"
    # Three no-shows in 90 days suspend online booking for 30 days; the refusal says until when.
    _, noshow = resident(client, platform, 72)
    ehc_id = client.get("/api/v1/me/card", headers=noshow).json()["ehc_id"]
    with platform.db.session() as db:
        ctx = platform.ctx(db, Actor(kind="staff", channel=Channel.WINDOW, id="sched", institution_id=institution,
                                      roles=frozenset({"institution_admin"})))
        for n in range(3):
            made = appointments.create_session(ctx, department_code="0300", day=TOMORROW() + timedelta(days=2 + n),
                                               shape=appointments.Shape(start="08:00", end="08:15", quota_window=1))
            period = appointments.periods(ctx, made)[0][0]
            appointments.book(ctx, period.id, appointments.patient_for_staff(ctx, ehc_id), confirm=True)
        assert appointments.mark_no_shows(ctx, utcnow() + timedelta(days=10)) == 3
    refused = _hold(client, noshow, _period(first, 2))
    assert refused.status_code == 409 and refused.json()["code"] == "no_show_suspended", refused.text
    assert refused.json()["rule"] == "no_shows" and refused.json()["until"]
    # The window still books them.
    ok = client.post("/api/v1/appointments/bookings", headers=staff["window_clerk"],
                     json={"period_id": _period(first, 2), "ehc_id": ehc_id})
    assert ok.status_code == 201, ok.text


def test_suspension_cancels_tells_and_offers_next_periods(client, platform, staff):
    admin = staff["institution_admin"]
    doomed = publish(client, admin)
    publish(client, admin, start="14:00", end="15:00", day=TOMORROW() + timedelta(days=1))
    _, me = resident(client, platform, 80, phone="13900000080")
    ref = _hold(client, me, _period(doomed)).json()["reference"]
    client.post(f"/api/v1/me/appointments/{ref}/confirm", headers=me)
    preview = client.get(f"/api/v1/appointments/sessions/{doomed['id']}/suspension", headers=admin).json()
    assert [e["reference"] for e in preview] == [ref] and len(preview[0]["offers"]) == 3
    assert client.get(f"/api/v1/me/appointments/{ref}", headers=me).json()["status"] == "booked"  # only a preview
    done = client.post(f"/api/v1/appointments/sessions/{doomed['id']}/suspend", json={"reason": "医生外出会诊"},
                       headers=admin)
    assert done.status_code == 200 and done.json()[0]["status"] == "cancelled"
    mine = client.get(f"/api/v1/me/appointments/{ref}", headers=me).json()
    assert mine["status"] == "cancelled" and mine["history"][-2]["reason"].startswith("session suspended")
    text = _texts(platform, "13900000080")[0]
    assert "停诊" in text and ref in text and "Next free" in text
    again = _hold(client, me, _period(doomed, 1))
    assert again.status_code == 409 and again.json()["code"] == "session_suspended"


def test_waitlist_offer_after_a_cancellation(client, platform, staff):
    session = publish(client, staff["institution_admin"], quota_online=1)
    _, first = resident(client, platform, 90)
    _, waiting = resident(client, platform, 91, phone="13900000091")
    ref = _hold(client, first, _period(session)).json()["reference"]
    early = client.post("/api/v1/me/waitlist", json={"period_id": _period(session, 1)}, headers=waiting)
    assert early.status_code == 409 and early.json()["code"] == "period_has_places"
    joined = client.post("/api/v1/me/waitlist", json={"period_id": _period(session)}, headers=waiting)
    assert joined.status_code == 201 and joined.json()["position"] == 1
    client.post(f"/api/v1/me/appointments/{ref}/cancel", json={}, headers=first)
    entry = client.get("/api/v1/me/waitlist", headers=waiting).json()[0]
    assert entry["status"] == "offered" and entry["booking_reference"]
    assert any("候补" in t for t in _texts(platform, "13900000091"))
    offered = client.post(f"/api/v1/me/appointments/{entry['booking_reference']}/confirm", headers=waiting)
    assert offered.status_code == 200 and offered.json()["status"] == "booked" and offered.json()["from_waitlist"]
    assert client.get("/api/v1/me/waitlist", headers=waiting).json()[0]["status"] == "booked"


def test_check_in_by_scanning_the_dynamic_code(client, platform, staff):
    soon = later_today(60)
    if soon is None:
        pytest.skip("too close to midnight in China for a session later today")
    day, start, end = soon
    session = publish(client, staff["institution_admin"], day=day, start=start, end=end)
    _, me = resident(client, platform, 95)
    ref = _hold(client, me, _period(session)).json()["reference"]
    client.post(f"/api/v1/me/appointments/{ref}/confirm", headers=me)
    code = client.post("/api/v1/me/qr/dynamic", headers=me).json()["text"]
    scanned = client.post("/api/v1/appointments/check-in", json={"code": code}, headers=staff["nurse"])
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["reference"] == ref and scanned.json()["status"] == "arrived"
    assert scanned.json()["scene"] == "0101012"  # booked today for today: same-day registration
    uses = client.get("/api/v1/me/card-uses", headers=me).json()
    assert uses[0]["scene"] == "0101012" and uses[0]["department"] == "0300"
    replay = client.post("/api/v1/appointments/check-in", json={"code": code}, headers=staff["nurse"])
    assert replay.status_code in (404, 409)  # nothing left to check in; the code is single use anyway
    _, other = resident(client, platform, 96)
    nothing = client.post("/api/v1/appointments/check-in", headers=staff["nurse"],
                          json={"code": client.post("/api/v1/me/qr/dynamic", headers=other).json()["text"]})
    assert nothing.status_code == 404 and nothing.json()["code"] == "no_booking_today"
    day_list = client.get("/api/v1/appointments/bookings?department_code=0300", headers=staff["window_clerk"])
    assert [b["status"] for b in day_list.json()] == ["arrived"]


def test_merge_carries_bookings_and_unmerge_brings_them_back(client, platform, staff):
    session = publish(client, staff["institution_admin"])
    a, me_a = resident(client, platform, 100)
    b, me_b = resident(client, platform, 101)
    ref_a = _hold(client, me_a, _period(session)).json()["reference"]
    ref_b = _hold(client, me_b, _period(session, 1)).json()["reference"]
    other = publish(client, staff["institution_admin"], start="14:00", end="15:00",
                    day=TOMORROW() + timedelta(days=1))
    ref_a2 = _hold(client, me_a, _period(other)).json()["reference"]
    with platform.db.session() as db:
        ctx = platform.ctx(db, Actor.system())
        source = mpi.resolve(ctx, db.get(Card, a).person_id)
        target = mpi.resolve(ctx, db.get(Card, b).person_id)
        merge = mpi.merge(ctx, source, target, "same person")
        merge_id = merge.id
    with platform.db.session() as db:
        ctx = platform.ctx(db, Actor.system())
        rows = {r: appointments.booking_by_reference(ctx, r) for r in (ref_a, ref_b, ref_a2)}
        assert rows[ref_a].status == "cancelled"  # one per session: the target's stays
        assert rows[ref_a2].person_id == target.id and rows[ref_a2].status == "held"
    with platform.db.session() as db:
        mpi.unmerge(platform.ctx(db, Actor.system()), merge_id, "two people after all")
    with platform.db.session() as db:
        ctx = platform.ctx(db, Actor.system())
        rows = {r: appointments.booking_by_reference(ctx, r) for r in (ref_a, ref_b, ref_a2)}
        assert rows[ref_a2].person_id == source.id
        assert rows[ref_a].status == "booked" and rows[ref_a].person_id == source.id
        assert rows[ref_b].person_id == target.id


def test_a_cancelled_card_cancels_its_future_bookings(client, platform, staff):
    session = publish(client, staff["institution_admin"])
    ehc_id, me = resident(client, platform, 110, phone="13900000110")
    ref = _hold(client, me, _period(session)).json()["reference"]
    client.post(f"/api/v1/cards/{ehc_id}/cancel", json={"reason": "deceased"}, headers=staff["window_clerk"])
    with platform.db.session() as db:
        ctx = platform.ctx(db, Actor.system())
        booking = appointments.booking_by_reference(ctx, ref)
        assert booking.status == "cancelled"
        assert [e.action for e in appointments.history(ctx, booking)][-2:] == ["card_cancel", "notify"]
    periods = client.get(f"/api/v1/appointments/sessions/{session['id']}").json()["periods"]
    assert periods[0]["free"] == 2


def test_cli_publishes_from_templates_sweeps_and_sets_policy(client, platform, settings, staff):
    import os
    import subprocess
    import sys

    env = {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
           "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "ehc.cli", "appointments", *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert (done.returncode == 0) is ok, done.stderr + done.stdout
        return done

    admin = staff["institution_admin"]
    client.post("/api/v1/appointments/templates", headers=admin,
                json={**SHAPE, "department_code": "0300", "weekday": TOMORROW().weekday()})
    institution = _institution(platform)
    assert "1 session(s) published" in run("publish", institution, "--days", "2").stdout
    assert "0 session(s) published" in run("publish", institution, "--days", "2").stdout
    assert "0300" in run("sessions", institution, "--days", "3").stdout
    assert "hold(s) expired" in run("sweep").stdout
    assert "policy of 51 set" in run("policy", "51", "--outstanding", "2").stdout
    refused = run("suspend", institution, "nope", "--reason", "x", ok=False)
    assert "session_not_found" in refused.stderr
    with platform.db.session() as db:
        assert appointments.rules_for(platform.ctx(db, Actor.system()), institution).outstanding == 2


def _institution(platform) -> str:  # noqa: ANN001
    from ehc.institutions.models import Institution

    with platform.db.session() as db:
        return db.query(Institution.id).first()[0]


def test_a_burst_of_holds_from_one_address_is_refused_whatever_the_accounts(client, platform, staff, institution):
    """A script rotating accounts from one address: each account stays under its own limit, the
    address does not. Another address is not touched; the refusal is recorded with the source."""
    from fastapi.testclient import TestClient

    from ehc.appointments.models import Event

    with platform.db.session() as db:
        appointments.set_policy(platform.ctx(db, Actor.system()), "51", holds_per_address_burst=3)
    sessions = [publish(client, staff["institution_admin"], start=f"{8 + n:02d}:00", end=f"{8 + n:02d}:15")
                for n in range(5)]
    accounts = [resident(client, platform, 130 + n)[1] for n in range(4)]
    answers = [_hold(client, accounts[n], _period(sessions[n])) for n in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[-1].json()["code"] == "booking_burst" and answers[-1].json()["rule"] == "holds_per_address_burst"
    with TestClient(client.app, client=("203.0.113.7", 40000)) as elsewhere:
        assert _hold(elsewhere, accounts[3], _period(sessions[4])).status_code == 201
    with platform.db.session() as db:
        refused = db.query(Event).filter(Event.action == "refused").one()
        sources = {e.source_index for e in db.query(Event).filter(Event.action == "hold")}
        assert refused.source_index in sources and len(sources) == 2 and "testclient" not in str(sources)


def test_a_burst_of_holds_from_one_account_is_refused_and_recorded(client, platform, staff, institution):
    with platform.db.session() as db:
        appointments.set_policy(platform.ctx(db, Actor.system()), "51", outstanding=50, per_department_per_day=50)
    sessions = [publish(client, staff["institution_admin"], start=f"{8 + n:02d}:00", end=f"{8 + n:02d}:15")
                for n in range(appointments.DEFAULT_RULES.holds_per_burst + 1)]
    _, me = resident(client, platform, 120)
    answers = [_hold(client, me, _period(s)) for s in sessions]
    assert [a.status_code for a in answers] == [201] * appointments.DEFAULT_RULES.holds_per_burst + [429]
    refused = answers[-1].json()
    assert refused["code"] == "booking_burst" and refused["rule"] == "holds_per_burst" and refused["until"]
    with platform.db.session() as db:  # the refusal outlived its failed request
        from ehc.appointments.models import Event

        assert db.query(Event).filter(Event.action == "refused").count() == 1
