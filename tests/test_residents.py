"""Residents sign in (SMS code or password) and manage their own and their family's cards; on both DBs."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ehc.accounts import residents as residents_service
from ehc.accounts import sms
from factories import sms_code
from ehc.kit.context import Actor
from residents import resident_id

PHONE = "13912345678"
NAME = "王小明"
NUMBER = resident_id(born=date(1985, 6, 1), sequence=21)


@pytest.fixture
def clock(monkeypatch):  # noqa: ANN001, ANN201
    """The sign-in rules' clock, moved by hand: rate limits and lock-outs without sleeping."""

    class Clock:
        now = datetime.now(timezone.utc)

        def advance(self, **delta: float) -> None:
            self.now += timedelta(**delta)

    c = Clock()
    monkeypatch.setattr(residents_service, "utcnow", lambda: c.now)
    return c


def apply(client, *, name: str = NAME, number: str = NUMBER, born: str = "1985-06-01", phone: str | None = PHONE,
          sex: str = "1") -> dict:  # noqa: ANN001
    body = {"name": name, "document": {"type": "01", "number": number}, "sex": sex, "birth_date": born,
            "address": "成都市武侯区人民南路四段1号"}
    if phone:
        body["phone"] = phone
    answer = client.post("/api/v1/cards", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def sent_code(platform, phone: str = PHONE) -> str:  # noqa: ANN001
    return sms_code(platform, phone)


def request_code(client, phone: str = PHONE, status: int = 202):  # noqa: ANN001, ANN201
    answer = client.post("/api/v1/auth/resident/otp", json={"phone": phone})
    assert answer.status_code == status, answer.text
    return answer


def sign_in(client, platform, phone: str = PHONE, **extra) -> dict[str, str]:  # noqa: ANN001
    request_code(client, phone)
    answer = client.post("/api/v1/auth/resident/token", json={"phone": phone, "code": sent_code(platform, phone), **extra})
    assert answer.status_code == 200, answer.text
    assert answer.json()["method"] == "otp"
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def token_with(client, body: dict):  # noqa: ANN001, ANN201
    return client.post("/api/v1/auth/resident/token", json=body)


# -- signing in -----------------------------------------------------------------------------------

def test_sign_in_with_a_code_shows_my_card_in_full(client, platform, clock):
    card = apply(client)
    assert card["holder"]["name"] == "王*明"  # the public answer is masked
    me = sign_in(client, platform, phone="+86 139-1234-5678")  # typed any way, it is the same phone

    mine = client.get("/api/v1/me/card", headers=me)
    assert mine.status_code == 200, mine.text
    holder = mine.json()["holder"]
    assert mine.json()["ehc_id"] == card["ehc_id"] and mine.json()["status"] == "normal"
    assert holder["name"] == NAME and holder["phone"] == PHONE and holder["birth_date"] == "1985-06-01"
    assert holder["document_number"] != NUMBER and holder["document_number"].endswith(NUMBER[-4:])

    # The code was single use.
    again = token_with(client, {"phone": PHONE, "code": sent_code(platform)})
    assert again.status_code == 401 and again.json()["code"] == "otp_invalid"
    # No token, no card; a made-up token is refused.
    assert client.get("/api/v1/me/card").json()["code"] == "unauthenticated"
    bogus = client.get("/api/v1/me/card", headers={"Authorization": "Bearer nope"})
    assert bogus.status_code == 401 and bogus.json()["code"] == "token_invalid"


def test_cookie_sign_in_for_pages_and_sign_out(client, platform, clock):
    card = apply(client)
    request_code(client)
    answer = client.post("/api/v1/auth/resident/token?cookie=1", json={"phone": PHONE, "code": sent_code(platform)})
    assert answer.status_code == 200 and answer.json()["access_token"] is None
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("ehc_resident=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/v1/me/card").json()["ehc_id"] == card["ehc_id"]  # the cookie alone signs in

    assert client.post("/api/v1/auth/resident/sign-out").status_code == 204
    client.cookies.clear()
    assert client.get("/api/v1/me/card").status_code == 401

    # A page's form post gets the cookie and a redirect (only ever to a path on this site).
    clock.advance(seconds=61)
    request_code(client)
    form = client.post("/api/v1/auth/resident/token", data={"phone": PHONE, "code": sent_code(platform),
                                                            "next": "https://evil.example/"},
                       follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/"
    assert "ehc_resident=" in form.headers["set-cookie"]
    assert client.get("/api/v1/me/card").json()["holder"]["name"] == NAME
    # A stale cookie does not get in the way of public pages: the visitor is simply anonymous.
    client.cookies.set("ehc_resident", "stale")
    assert client.get("/api/v1/me/card").json()["code"] == "unauthenticated"
    client.cookies.clear()


def test_code_expires_after_five_minutes(client, platform, clock):
    apply(client)
    request_code(client)
    code = sent_code(platform)
    clock.advance(minutes=5, seconds=1)
    answer = token_with(client, {"phone": PHONE, "code": code})
    assert answer.status_code == 401 and answer.json()["code"] == "otp_expired"


def test_five_wrong_codes_burn_the_code(client, platform, clock):
    apply(client)
    request_code(client)
    code = sent_code(platform)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        answer = token_with(client, {"phone": PHONE, "code": wrong})
        assert answer.status_code == 401 and answer.json()["code"] == "otp_invalid"
        assert answer.json()["attempts_left"] == left
    assert token_with(client, {"phone": PHONE, "code": wrong}).json()["code"] == "otp_burnt"
    # Burnt for good (the count survived the failed requests): even the right code is refused now.
    right = token_with(client, {"phone": PHONE, "code": code})
    assert right.status_code == 401 and right.json()["code"] == "otp_burnt"
    clock.advance(seconds=61)
    sign_in(client, platform)  # a new code works


def test_code_requests_are_rate_limited(client, platform, clock):
    apply(client)
    request_code(client)
    again = request_code(client, status=429)
    body = again.json()
    assert body["code"] == "otp_rate_limited" and 0 < body["retry_after"] <= 60
    assert again.headers["retry-after"] == str(body["retry_after"])
    assert again.headers["content-type"].startswith("application/problem+json")
    for _ in range(9):  # ten a day
        clock.advance(seconds=61)
        request_code(client)
    clock.advance(seconds=61)
    daily = request_code(client, status=429).json()
    assert daily["code"] == "otp_daily_limit_reached" and daily["retry_after"] > 60
    clock.advance(hours=24)
    request_code(client)
    # A new code retires the previous one.
    with platform.db.session() as session:
        codes = [m.text for m in sms.outbox(session, platform.vault, phone=PHONE, limit=2)]
    old = re.search(r"\d{6}", codes[1]).group()
    if old != sent_code(platform):
        assert token_with(client, {"phone": PHONE, "code": old}).json()["code"] == "otp_invalid"


def test_a_phone_without_a_card_gets_the_same_answer_and_no_text(client, platform, clock):
    stranger = "13700000001"
    first = request_code(client, stranger).json()
    assert first == {"sent": True, "expires_in": 300, "resend_after": 60}
    with platform.db.session() as session:
        assert sms.outbox(session, platform.vault, phone=stranger) == []
    assert request_code(client, stranger, status=429).json()["code"] == "otp_rate_limited"
    answer = token_with(client, {"phone": stranger, "code": "123456"})
    assert answer.status_code == 401 and answer.json()["code"] == "otp_invalid"
    bad = client.post("/api/v1/auth/resident/otp", json={"phone": "12345"})
    assert bad.status_code == 422 and bad.json()["code"] == "phone_malformed"


# -- passwords ------------------------------------------------------------------------------------

def test_password_set_then_sign_in_with_it_and_lock_out(client, platform, clock):
    apply(client)
    first = sign_in(client, platform)
    clock.advance(seconds=61)
    me = sign_in(client, platform)
    weak = client.post("/api/v1/me/password", json={"new_password": "short"}, headers=me)
    assert weak.status_code == 422 and weak.json()["code"] == "password_length"
    assert client.post("/api/v1/me/password", json={"new_password": "my health card 2026"}, headers=me).status_code == 204
    # Setting a password ends the other sign-ins, not this one.
    assert client.get("/api/v1/me/card", headers=first).status_code == 401
    assert client.get("/api/v1/me/card", headers=me).status_code == 200

    ok = token_with(client, {"phone": PHONE, "password": "my health card 2026"})
    assert ok.status_code == 200 and ok.json()["method"] == "password"
    assert client.get("/api/v1/me/card", headers={"Authorization": f"Bearer {ok.json()['access_token']}"}).status_code == 200

    # Changing it needs the current password (or a fresh code).
    change = client.post("/api/v1/me/password", json={"new_password": "another good one"}, headers=me)
    assert change.status_code == 422 and change.json()["code"] == "current_password_required"

    for _ in range(5):
        bad = token_with(client, {"phone": PHONE, "password": "guess guess"})
        assert bad.status_code == 401 and bad.json()["code"] == "sign_in_failed"
    locked = token_with(client, {"phone": PHONE, "password": "my health card 2026"})
    assert locked.status_code == 401 and locked.json()["code"] == "account_locked"
    assert 0 < locked.json()["retry_after"] <= 15 * 60 and locked.headers["retry-after"]
    # The phone's owner can still sign in with a code meanwhile.
    clock.advance(seconds=61)
    sign_in(client, platform)
    clock.advance(minutes=15)
    assert token_with(client, {"phone": PHONE, "password": "my health card 2026"}).status_code == 200

    # A forgotten password is reset with a code.
    clock.advance(seconds=61)
    request_code(client)
    reset = client.post("/api/v1/me/password", json={"new_password": "brand new secret", "code": sent_code(platform)},
                        headers=me)
    assert reset.status_code == 204, reset.text
    assert token_with(client, {"phone": PHONE, "password": "brand new secret"}).status_code == 200


def test_password_sign_in_without_a_password_is_a_plain_failure(client, platform, clock):
    apply(client)
    for phone in (PHONE, "13700000002"):  # a resident without a password, and a phone with no card
        answer = token_with(client, {"phone": phone, "password": "whatever it is"})
        assert answer.status_code == 401 and answer.json()["code"] == "sign_in_failed"
    assert token_with(client, {"phone": PHONE}).json()["code"] == "credentials_required"


# -- who is who on a shared phone -----------------------------------------------------------------

def test_adults_sharing_a_phone_tell_themselves_apart_by_document(client, platform, clock):
    husband = apply(client)
    wife_number = resident_id(born=date(1987, 2, 3), sequence=40, male=False)
    wife = apply(client, name="李丽", number=wife_number, born="1987-02-03", sex="2")
    request_code(client)
    code = sent_code(platform)
    choose = token_with(client, {"phone": PHONE, "code": code})
    assert choose.status_code == 409 and choose.json()["code"] == "resident_choice_required"
    # The right code was not used up by having to choose.
    answer = token_with(client, {"phone": PHONE, "code": code, "document_last4": wife_number[-4:].lower()})
    assert answer.status_code == 200, answer.text
    mine = client.get("/api/v1/me/card", headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
    assert mine.json()["ehc_id"] == wife["ehc_id"] != husband["ehc_id"] and mine.json()["holder"]["name"] == "李丽"

    clock.advance(seconds=61)
    request_code(client)
    wrong = token_with(client, {"phone": PHONE, "code": sent_code(platform), "document_last4": "0000"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "document_last4_mismatch"


# -- family ---------------------------------------------------------------------------------------

def test_guardian_binds_a_child_and_reports_the_childs_card_lost(client, platform, clock, clerk):
    me_card = apply(client)
    me = sign_in(client, platform)
    child_number = resident_id(born=date(2016, 1, 1), sequence=3)
    child = {"name": "王子涵", "document": {"type": "01", "number": child_number}, "sex": "1",
             "birth_date": "2016-01-01", "phone": PHONE, "relation": "child"}
    bound = client.post("/api/v1/me/family", json=child, headers={**me, "Idempotency-Key": "bind-child-1"})
    assert bound.status_code == 201, bound.text
    child_card = bound.json()
    assert child_card["holder"]["name"] == "王子涵" and child_card["holder"]["phone"] == "139****5678"
    replay = client.post("/api/v1/me/family", json=child, headers={**me, "Idempotency-Key": "bind-child-1"})
    assert replay.status_code == 201 and replay.json()["ehc_id"] == child_card["ehc_id"]

    newborn = client.post("/api/v1/me/newborns", json={"sex": "2", "birth_date": date.today().isoformat()}, headers=me)
    assert newborn.status_code == 201 and newborn.json()["holder"]["name"] == "王小明之女"

    family = client.get("/api/v1/me/family", headers=me).json()
    assert [(m["relation"], m["card"]["ehc_id"]) for m in family] == [
        ("child", child_card["ehc_id"]), ("child", newborn.json()["ehc_id"])]

    # The child shares my phone and is bound to me: signing in with the phone is still just me.
    clock.advance(seconds=61)
    again = sign_in(client, platform)
    assert client.get("/api/v1/me/card", headers=again).json()["ehc_id"] == me_card["ehc_id"]

    lost = client.post(f"/api/v1/me/family/{child_card['ehc_id']}/report-lost", json={"reason": "lost at school"},
                       headers={**me, "X-EHC-Channel": "0402"})
    assert lost.status_code == 200 and lost.json()["status"] == "lost", lost.text
    events = client.get(f"/api/v1/cards/{child_card['ehc_id']}/events", headers=clerk).json()
    assert events[-1]["action"] == "report_lost" and events[-1]["actor_kind"] == "resident"
    assert events[-1]["channel"] == "0402" and events[-1]["reason"] == "lost at school"
    assert client.get(f"/api/v1/me/family/{child_card['ehc_id']}", headers=me).json()["card"]["status"] == "lost"

    # And my own card.
    mine = client.post("/api/v1/me/card/report-lost", headers=me)
    assert mine.status_code == 200 and mine.json()["status"] == "lost"
    assert client.post("/api/v1/me/card/report-lost", headers=me).json()["code"] == "card_transition_not_allowed"


def test_a_strangers_card_is_not_found(client, platform, clock):
    apply(client)
    me = sign_in(client, platform)
    stranger_number = resident_id(born=date(1970, 9, 9), sequence=55)
    stranger = apply(client, name="赵大海", number=stranger_number, born="1970-09-09", phone="13800000000")
    missing = "F" * 64
    for path in (f"/api/v1/me/family/{stranger['ehc_id']}", f"/api/v1/me/family/{missing}"):
        answer = client.get(path, headers=me)
        assert answer.status_code == 404 and answer.json()["code"] == "card_not_found"
    for ehc_id in (stranger["ehc_id"], missing):
        answer = client.post(f"/api/v1/me/family/{ehc_id}/report-lost", headers=me)
        assert answer.status_code == 404 and answer.json()["code"] == "card_not_found"
        assert answer.json()["detail"] == "No card with this EHC ID."  # the same answer either way

    # Knowing a stranger's name and ID number is not enough to bind (and then control) their card.
    taken = client.post("/api/v1/me/family", headers=me, json={
        "name": "赵大海", "document": {"type": "01", "number": stranger_number}, "relation": "parent"})
    assert taken.status_code == 409 and taken.json()["code"] == "family_member_consent_required"
    assert client.get("/api/v1/me/family", headers=me).json() == []


def test_staff_and_resident_apis_keep_to_their_own_callers(client, platform, clock, clerk):
    card = apply(client)
    me = sign_in(client, platform)
    lookup = client.post("/api/v1/cards/lookup", json={"document": {"type": "01", "number": NUMBER}}, headers=me)
    assert lookup.status_code == 403 and lookup.json()["code"] == "role_not_allowed"
    for path in (f"/api/v1/cards/{card['ehc_id']}", f"/api/v1/cards/{card['ehc_id']}/family"):
        assert client.get(path, headers=me).status_code == 403
    assert client.post(f"/api/v1/cards/{card['ehc_id']}/cancel", json={"reason": "x"}, headers=me).status_code == 403
    staff = client.get("/api/v1/me/card", headers=clerk)
    assert staff.status_code == 403 and staff.json()["code"] == "resident_only"


# -- nothing in clear -----------------------------------------------------------------------------

def _dump(url: str) -> bytes:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return subprocess.run(
        ["pg_dump", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
         "--no-owner", parsed.database],
        check=True, capture_output=True,
    ).stdout


def test_outbox_and_accounts_hold_no_phone_number_in_clear(client, platform, clock):
    apply(client)
    me = sign_in(client, platform)
    assert client.post("/api/v1/me/password", json={"new_password": "my health card 2026"}, headers=me).status_code == 204
    clock.advance(seconds=61)
    request_code(client)
    pending = sent_code(platform)
    with platform.db.engine.connect() as conn:
        rows = {table: conn.execute(text(f'SELECT * FROM "{table}"')).all()
                for table in ("sms_outbox", "resident_accounts", "resident_otp_codes", "access_tokens")}
    assert len(rows["sms_outbox"]) == 2 and len(rows["resident_accounts"]) == 1 and len(rows["resident_otp_codes"]) == 2
    flat = repr(rows)
    assert PHONE not in flat and PHONE[-8:] not in flat
    assert pending not in repr(rows["resident_otp_codes"]) and "my health card" not in flat
    dump = _dump(platform.settings.database_url)
    assert len(dump) > 10_000 and PHONE.encode() not in dump and NUMBER.encode() not in dump
    # The outbox still opens for the developer.
    with platform.db.session() as session:
        assert sms.outbox(session, platform.vault, limit=1)[0].phone == PHONE


def test_sms_outbox_command_shows_messages(client, platform, clock, settings):
    import os
    import sys

    apply(client)
    request_code(client)
    env = {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
           "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "ehc.cli", "sms", "outbox", "--phone", PHONE], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert PHONE in done.stdout and sent_code(platform) in done.stdout


def test_the_outbox_is_refused_in_production(platform):
    from dataclasses import replace

    from ehc.kit.context import Actor
    from ehc.kit.errors import Problem

    production = replace(platform.settings, environment="production")
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.anonymous())
        ctx.settings = production
        with pytest.raises(Problem) as refused:
            sms.get_sender(ctx)
    assert refused.value.code == "sms_sender_not_configured"


def test_staff_slow_down_survives_the_failed_requests(client, platform, institution):
    # The same rule as for residents' passwords: each failure is kept although its request fails
    # (a staff member's source is slowed down rather than the account locked: test_staff_sign_in.py).
    from ehc.accounts import service

    with platform.db.session() as session:
        service.create_staff(platform.ctx(session, Actor.system()), username="clerk-lock",
                             password="correct horse battery", role="window_clerk", institution_id=institution)
    for _ in range(5):
        wrong = client.post("/api/v1/auth/staff/token", json={"username": "clerk-lock", "password": "wrong wrong"})
        assert wrong.json()["code"] == "sign_in_failed"
    slowed = client.post("/api/v1/auth/staff/token", json={"username": "clerk-lock", "password": "correct horse battery"})
    assert slowed.status_code == 429 and slowed.json()["code"] == "sign_in_slowed"


def test_the_residents_sign_out_does_not_end_a_staff_session(client, clerk):
    """Each door ends only its own kind of sign-in: a staff token sent to the residents' sign-out
    stays valid."""
    assert client.get("/api/v1/institutions", headers=clerk).status_code == 200
    assert client.post("/api/v1/auth/resident/sign-out", headers=clerk).status_code == 204
    assert client.get("/api/v1/institutions", headers=clerk).status_code == 200
