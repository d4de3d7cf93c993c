"""The trust pages: staff sign-in and the institution admin's pages, resident sign-in, "my card" with
family members, and "who looked at my data".

The TestClient tests run on SQLite and PostgreSQL (the ``client`` fixture); the browser scenario
runs once, against a live uvicorn server on SQLite (tests/browser.py), and saves screenshots to
test-artifacts/.
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
from datetime import date, datetime, timedelta, timezone

import pytest
from factories import ARTIFACTS, sms_code
from residents import resident_id
from sqlalchemy import select

from ehc.accounts import residents as residents_service
from ehc.accounts import service as accounts
from ehc.cards.models import Card
from ehc.institutions.models import Terminal
from ehc.web import i18n
from ehc.kit.context import Actor

EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")
PASSWORD = "correct horse battery"
PHONE = "13912345678"
NAME = "王小明"
NUMBER = resident_id(born=date(1985, 6, 1), sequence=21)
CHILD_NUMBER = resident_id(born=date(2016, 1, 1), sequence=3)


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


# -- helpers --------------------------------------------------------------------------------------

def bad_checksum(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


def text_of(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace squeezed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def form_post(client, page_path: str, action: str, data: dict, **kwargs):  # noqa: ANN001, ANN201
    """GET the page (for its CSRF token), then POST the form to ``action``."""
    page = client.get(page_path)
    assert page.status_code == 200, page.text
    return client.post(action, data={"csrf_token": csrf_of(page.text), **data}, **kwargs)


def new_staff(platform, role: str, institution: str | None, username: str | None = None,  # noqa: ANN001
              display_name: str | None = None) -> str:
    username = username or f"{role.replace('_', '-')}-{int(time.time() * 1e6) % 10**8}"
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username=username, password=PASSWORD, role=role,
                              institution_id=institution, display_name=display_name or f"{role} {username[-4:]}")
    return username


def staff_sign_in(client, username: str, password: str = PASSWORD, lang: str = "en"):  # noqa: ANN001, ANN201
    return form_post(client, f"/staff/sign-in?lang={lang}", "/staff/sign-in",
                     {"username": username, "password": password}, follow_redirects=False)


def apply(client, *, name: str = NAME, number: str = NUMBER, born: str = "1985-06-01", phone: str | None = PHONE,
          sex: str = "1") -> dict:  # noqa: ANN001
    body = {"name": name, "document": {"type": "01", "number": number}, "sex": sex, "birth_date": born}
    if phone:
        body["phone"] = phone
    answer = client.post("/api/v1/cards", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def sent_code(platform, phone: str = PHONE) -> str:  # noqa: ANN001
    return sms_code(platform, phone)


def ask_code(client, phone: str = PHONE, lang: str = "en"):  # noqa: ANN001, ANN201
    return form_post(client, f"/sign-in?lang={lang}", "/sign-in/send-code", {"phone": phone}, follow_redirects=False)


def enter_code(client, code: str, **extra: str):  # noqa: ANN001, ANN201
    return form_post(client, "/sign-in/code", "/sign-in/code", {"code": code, **extra}, follow_redirects=False)


def resident_sign_in(client, platform, phone: str = PHONE) -> None:  # noqa: ANN001
    asked = ask_code(client, phone)
    assert asked.status_code == 303 and asked.headers["location"] == "/sign-in/code", asked.text
    signed = enter_code(client, sent_code(platform, phone))
    assert signed.status_code == 303 and signed.headers["location"] == "/me", signed.text


def admin_of(client, platform, institution: str) -> str:  # noqa: ANN001
    username = new_staff(platform, "institution_admin", institution)
    assert staff_sign_in(client, username).status_code == 303
    return f"/staff/institution/{institution}"


# -- staff sign-in ----------------------------------------------------------------------------------

def test_staff_sign_in_sets_the_cookie_and_the_home_says_who(client, platform, institution):
    username = new_staff(platform, "window_clerk", institution)
    page = client.get("/staff/sign-in?lang=zh")
    assert page.status_code == 200 and ZH["staff_sign_in.title"] in page.text
    assert page.headers["cache-control"] == "no-store" and "ehc_csrf=" in page.headers["set-cookie"]
    assert 'autocomplete="current-password"' in page.text and 'autocomplete="username"' in page.text

    answer = staff_sign_in(client, username, lang="zh")
    assert answer.status_code == 303 and answer.headers["location"] == "/staff"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ehc_staff="))
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "max-age=28800" in cookie.lower()
    token = cookie.split(";")[0].split("=", 1)[1]

    home = client.get("/staff")
    assert home.status_code == 200
    seen = text_of(home.text)
    assert username in seen and ZH["roles.window_clerk"] in seen and "Test People's Hospital" in seen
    assert ZH["account.signed_in_as"].format(name=f"window_clerk {username[-4:]}") in seen
    assert ZH["nav.staff_institution"] not in seen  # a clerk has no admin pages to go to
    # The same sign-in works for the API: one token, two doors.
    assert client.get("/api/v1/institutions/inst-test-01", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    # Signing out ends the token, not just the cookie.
    out = form_post(client, "/staff", "/staff/sign-out", {}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/staff/sign-in"
    assert 'ehc_staff=""' in out.headers["set-cookie"] or "ehc_staff=;" in out.headers["set-cookie"]
    assert client.get("/api/v1/institutions/inst-test-01", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    after = client.get("/staff/sign-in")
    assert ZH["flash.signed_out"] in after.text
    assert client.get("/staff", follow_redirects=False).headers["location"] == "/staff/sign-in"


def test_wrong_staff_passwords_slow_this_computer_down(client, platform, institution):
    username = new_staff(platform, "doctor", institution)
    wrong = staff_sign_in(client, username, "not the password")
    assert wrong.status_code == 401 and EN["errors.sign_in_failed"] in wrong.text
    assert f'value="{username}"' in wrong.text and "not the password" not in wrong.text  # never echoed
    assert "ehc_staff=" not in wrong.headers.get("set-cookie", "")
    for _ in range(4):
        staff_sign_in(client, username, "not the password")
    slowed = staff_sign_in(client, username)  # even the right password, until the wait is over
    assert slowed.status_code == 429
    assert EN["errors.sign_in_slowed"].format(seconds=60) in text_of(slowed.text)
    zh = staff_sign_in(client, username, lang="zh")
    assert ZH["errors.sign_in_slowed"].format(seconds=60) in text_of(zh.text)

    empty = staff_sign_in(client, "", "")
    assert empty.status_code == 422 and EN["errors.required"] in empty.text


def test_anonymous_visitors_are_sent_to_sign_in(client, institution):
    for path, target in [
        ("/staff", "/staff/sign-in"),
        ("/staff/institution", "/staff/sign-in?next=/staff/institution"),
        (f"/staff/institution/{institution}/terminals", f"/staff/sign-in?next=/staff/institution/{institution}/terminals"),
        ("/me", "/sign-in"),
        ("/me/access-log", "/sign-in?next=/me/access-log"),
        ("/me/family/add", "/sign-in?next=/me/family/add"),
    ]:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == target, path
    # A stale or forged cookie is dropped on the way.
    client.cookies.set("ehc_staff", "forged")
    stale = client.get("/staff", follow_redirects=False)
    assert stale.status_code == 303 and 'ehc_staff=""' in stale.headers["set-cookie"]
    # After signing in, "next" brings the admin back; anything off-site is ignored.
    page = client.get("/staff/sign-in?next=https://evil.example/")
    assert "evil.example" not in page.text


def test_roles_that_may_not_administer_get_a_403_page(client, platform, institution):
    clerk = new_staff(platform, "window_clerk", institution)
    staff_sign_in(client, clerk, lang="zh")
    for path in ("/staff/institution", f"/staff/institution/{institution}/departments",
                 f"/staff/institution/{institution}/staff"):
        answer = client.get(path)
        assert answer.status_code == 403 and answer.headers["content-type"].startswith("text/html"), path
        assert ZH["errors.role_not_allowed"] in answer.text and ZH["error_page.title_role_not_allowed"] in answer.text
        assert ZH["error_page.back_to_staff"] in answer.text
    posted = client.post(f"/staff/institution/{institution}/departments",
                         data={"csrf_token": csrf_of(client.get("/staff").text), "code": "0300"})
    assert posted.status_code == 403

    # An admin of another institution: that institution is "not found", as the API answers.
    with platform.db.session() as session:
        from ehc.institutions.service import create_institution
        create_institution(session, uscc="91510104MA6CN3X05K", name="Other Clinic", kind="clinic",
                           region_code="510104", institution_id="inst-other")
    client.cookies.clear()
    admin_of(client, platform, "inst-other")
    other = client.get(f"/staff/institution/{institution}/departments?lang=en")
    assert other.status_code == 404 and EN["errors.institution_not_found"] in other.text
    assert client.get("/staff/institution", follow_redirects=False).headers["location"] == "/staff/institution/inst-other"


def test_platform_admin_picks_an_institution(client, platform, institution):
    username = new_staff(platform, "platform_admin", None)
    staff_sign_in(client, username)
    picker = client.get("/staff/institution")
    assert picker.status_code == 200 and "Test People's Hospital" in text_of(picker.text)
    assert f'href="/staff/institution/{institution}"' in picker.text
    assert client.get(f"/staff/institution/{institution}/terminals").status_code == 200


# -- institution admin: departments, terminals, staff --------------------------------------------------

def test_departments_add_rename_and_remove_with_the_in_use_refusal(client, platform, institution):
    base = admin_of(client, platform, institution)
    overview = client.get(base)
    assert overview.status_code == 200 and "12510000MB1234567X" in overview.text

    added = form_post(client, f"{base}/departments", f"{base}/departments", {"code": "0304", "name": ""},
                      follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == f"{base}/departments"
    listed = client.get(f"{base}/departments")
    seen = text_of(listed.text)
    assert EN["flash.department_added"].format(value="0304 心血管内科专业") in seen
    assert "Cardiology" in seen  # the standard label in the page's language
    assert EN["flash.department_added"].split("{")[0] not in text_of(client.get(f"{base}/departments").text)  # once

    again = form_post(client, f"{base}/departments", f"{base}/departments", {"code": "0304"})
    assert again.status_code == 409 and EN["errors.department_code_taken"] in again.text
    bad = form_post(client, f"{base}/departments", f"{base}/departments", {"code": "9999"})
    assert bad.status_code == 422 and EN["errors.department_code_invalid"] in bad.text
    assert 'aria-invalid="true"' in re.search(r'<select[^>]*id="code"[^>]*>', bad.text).group(0)

    renamed = form_post(client, f"{base}/departments", f"{base}/departments/0304/rename", {"name": "心内科"})
    assert renamed.status_code == 200 and "心内科" in renamed.text
    blank = form_post(client, f"{base}/departments", f"{base}/departments/0304/rename", {"name": " "})
    assert blank.status_code == 422 and EN["errors.local_name_invalid"] in blank.text

    form_post(client, f"{base}/terminals", f"{base}/terminals",
              {"terminal_id": "W01", "role": "window", "department_code": "0304", "name": "门诊一楼 1 号窗口"})
    in_use = form_post(client, f"{base}/departments", f"{base}/departments/0304/remove", {})
    assert in_use.status_code == 409 and EN["errors.department_in_use"] in in_use.text
    assert 'class="row-invalid"' in in_use.text

    moved = form_post(client, f"{base}/terminals", f"{base}/terminals/W01", {"action": "move", "department_code": ""})
    assert moved.status_code == 200 and EN["flash.terminal_moved"].format(value="W01") in text_of(moved.text)
    removed = form_post(client, f"{base}/departments", f"{base}/departments/0304/remove", {})
    assert removed.status_code == 200 and "心内科" not in removed.text
    assert EN["admin.departments.none"] in removed.text


def test_terminals_register_retire_and_reactivate(client, platform, institution):
    base = admin_of(client, platform, institution)
    form_post(client, f"{base}/departments", f"{base}/departments", {"code": "0300"})
    page = client.get(f"{base}/terminals?lang=zh")
    assert "服务窗口（类型 01）" in page.text and "0300 · 内科" in page.text

    kiosk = form_post(client, f"{base}/terminals", f"{base}/terminals",
                      {"terminal_id": "K-01", "role": "kiosk", "department_code": "0300", "name": ""})
    assert kiosk.status_code == 200 and ZH["flash.terminal_registered"].format(value="K-01") in text_of(kiosk.text)
    with platform.db.session() as session:
        terminal = session.scalar(select(Terminal).where(Terminal.terminal_id == "K-01"))
        assert (terminal.type_code, terminal.role, terminal.status) == ("02", "kiosk", "active")

    taken = form_post(client, f"{base}/terminals", f"{base}/terminals", {"terminal_id": "K-01", "role": "window"})
    assert taken.status_code == 409 and ZH["errors.terminal_id_taken"] in taken.text
    assert 'value="K-01"' in taken.text  # the form keeps what was typed
    bad = form_post(client, f"{base}/terminals", f"{base}/terminals", {"terminal_id": "-bad id", "role": "window"})
    assert bad.status_code == 422 and ZH["errors.terminal_id_invalid"] in bad.text
    assert re.search(r'id="terminal_id-error"', bad.text)

    retired = form_post(client, f"{base}/terminals", f"{base}/terminals/K-01", {"action": "retire"})
    assert ZH["admin.terminals.status_retired"] in retired.text and ZH["admin.terminals.reactivate"] in retired.text
    back = form_post(client, f"{base}/terminals", f"{base}/terminals/K-01", {"action": "reactivate"})
    assert ZH["flash.terminal_reactivated"].format(value="K-01") in text_of(back.text)
    missing = form_post(client, f"{base}/terminals", f"{base}/terminals/NOPE", {"action": "retire"})
    assert missing.status_code == 404 and ZH["errors.terminal_not_found"] in missing.text


def test_staff_create_disable_and_enable(client, platform, institution):
    base = admin_of(client, platform, institution)
    page = client.get(f"{base}/staff")
    roles = re.findall(r'<option value="([a-z_]+)"', page.text)
    assert set(roles) == {"window_clerk", "doctor", "nurse", "family_doctor", "cashier", "institution_admin"}

    made = form_post(client, f"{base}/staff", f"{base}/staff",
                     {"username": "li.nurse", "display_name": "李护士", "role": "nurse", "password": "long enough pw"},
                     follow_redirects=False)
    assert made.status_code == 303
    listed = client.get(f"{base}/staff")
    assert EN["flash.staff_created"].format(value="li.nurse") in text_of(listed.text) and "李护士" in listed.text
    assert "long enough pw" not in listed.text

    short = form_post(client, f"{base}/staff", f"{base}/staff",
                      {"username": "wang.doc", "role": "doctor", "password": "short"})
    assert short.status_code == 422 and EN["errors.password_too_short"] in short.text
    assert 'value="wang.doc"' in short.text and 'aria-invalid="true"' in re.search(
        r'<input[^>]*id="password"[^>]*>', short.text).group(0)
    taken = form_post(client, f"{base}/staff", f"{base}/staff",
                      {"username": "li.nurse", "role": "doctor", "password": "long enough pw"})
    assert taken.status_code == 409 and EN["errors.username_taken"] in taken.text
    commission = form_post(client, f"{base}/staff", f"{base}/staff",
                           {"username": "sneaky", "role": "platform_admin", "password": "long enough pw"})
    assert commission.status_code == 422 and EN["errors.role_out_of_scope"] in commission.text

    # The new nurse can sign in (elsewhere) until disabled; disabling ends her sign-in at once.
    from fastapi.testclient import TestClient
    nurse_browser = TestClient(client.app)
    assert staff_sign_in(nurse_browser, "li.nurse", "long enough pw").status_code == 303
    assert nurse_browser.get("/staff").status_code == 200
    with platform.db.session() as session:
        nurse_id = next(a.id for a in accounts.list_staff(platform.ctx(session, Actor.system()), institution) if a.username == "li.nurse")
    disabled = form_post(client, f"{base}/staff", f"{base}/staff/{nurse_id}", {"action": "disable"})
    assert EN["flash.staff_disabled"].format(value="li.nurse") in text_of(disabled.text)
    assert nurse_browser.get("/staff", follow_redirects=False).status_code == 303
    enabled = form_post(client, f"{base}/staff", f"{base}/staff/{nurse_id}", {"action": "enable"})
    assert EN["flash.staff_enabled"].format(value="li.nurse") in text_of(enabled.text)

    # No button to disable oneself, and the service refuses it anyway.
    with platform.db.session() as session:
        own_id = next(a.id for a in accounts.list_staff(platform.ctx(session, Actor.system()), institution) if a.role == "institution_admin")
    assert f'action="{base}/staff/{own_id}"' not in enabled.text
    own = form_post(client, f"{base}/staff", f"{base}/staff/{own_id}", {"action": "disable"})
    assert own.status_code == 409 and EN["errors.own_account_change_refused"] in own.text


def test_every_admin_form_needs_the_csrf_token(client, platform, institution):
    base = admin_of(client, platform, institution)
    client.get(f"{base}/departments")  # the browser holds a CSRF cookie, but the form does not carry it
    for action, data in [
        (f"{base}/departments", {"code": "0300"}),
        (f"{base}/terminals", {"terminal_id": "W09", "role": "window"}),
        (f"{base}/staff", {"username": "x.y.z", "role": "doctor", "password": "long enough pw"}),
        ("/staff/sign-out", {}),
    ]:
        answer = client.post(action, data=data, follow_redirects=False)
        assert answer.status_code == 403 and EN["errors.csrf_failed"] in answer.text, action
    assert "0300" not in text_of(client.get(f"{base}/departments").text).split(EN["admin.departments.add_title"])[0]
    assert client.get("/staff").status_code == 200  # still signed in


def test_apps_and_keys_register_sign_and_revoke(client, platform, institution):
    from ehc.client import EhcClient, EhcError
    from ehc.crypto import SM2PrivateKey

    base = admin_of(client, platform, institution)
    empty = client.get(f"{base}/keys")
    assert empty.status_code == 200 and EN["admin.keys.none"] in empty.text
    nameless = form_post(client, f"{base}/keys", f"{base}/keys/apps", {"app_name": " "})
    assert nameless.status_code == 422 and EN["errors.app_name_invalid"] in text_of(nameless.text)
    assert 'aria-invalid="true"' in re.search(r'<input[^>]*id="app_name"[^>]*>', nameless.text).group(0)
    made = form_post(client, f"{base}/keys", f"{base}/keys/apps", {"app_name": "HIS 门诊"}, follow_redirects=False)
    assert made.status_code == 303
    page = client.get(f"{base}/keys")
    assert EN["flash.app_created"].format(value="HIS 门诊") in text_of(page.text)
    app_id = re.search(r'id="app-([0-9a-f]{16})"', page.text).group(1)
    assert EN["admin.keys.no_keys"] in page.text

    private = SM2PrivateKey.generate()
    private_pem = private.to_pem().decode()
    refused = form_post(client, f"{base}/keys", f"{base}/keys/apps/{app_id}", {"public_key_pem": private_pem})
    assert refused.status_code == 422 and EN["admin.keys.private_key_refused"] in refused.text
    assert private_pem.splitlines()[1] not in refused.text  # never shown back
    garbage = form_post(client, f"{base}/keys", f"{base}/keys/apps/{app_id}", {"public_key_pem": "hello"})
    assert garbage.status_code == 422 and EN["errors.public_key_invalid"] in garbage.text
    assert f'id="pem-{app_id}-error"' in garbage.text

    public = private.public_key
    added = form_post(client, f"{base}/keys", f"{base}/keys/apps/{app_id}",
                      {"public_key_pem": public.to_pem().decode()})
    assert added.status_code == 200
    key_id = public.fingerprint[:16]
    assert EN["flash.key_added"].format(value=key_id) in text_of(added.text)
    assert f'data-fingerprint="{public.fingerprint}"' in added.text and EN["admin.keys.status_active"] in added.text
    assert "BEGIN PRIVATE KEY" not in added.text and public.to_pem().decode().splitlines()[1] not in added.text
    twice = form_post(client, f"{base}/keys", f"{base}/keys/apps/{app_id}", {"public_key_pem": public.to_pem().decode()})
    assert twice.status_code == 409 and EN["errors.key_already_registered"] in twice.text

    # The key registered on the page signs requests the API accepts, until it is revoked there.
    with EhcClient("http://testserver", app_id, key_id, private.to_pem(), http=client) as ehc:
        assert ehc.ping()["app_id"] == app_id
        confirm = client.get(f"{base}/keys/apps/{app_id}/{key_id}/revoke")
        assert confirm.status_code == 200 and EN["admin.keys.revoke_text"] in confirm.text
        revoked = form_post(client, f"{base}/keys/apps/{app_id}/{key_id}/revoke",
                            f"{base}/keys/apps/{app_id}/{key_id}/revoke", {}, follow_redirects=False)
        assert revoked.status_code == 303
        with pytest.raises(EhcError) as refused_after:
            ehc.ping()
        assert refused_after.value.code == "key_revoked"
    listed = client.get(f"{base}/keys")
    assert EN["flash.key_revoked"].format(value=key_id) in text_of(listed.text)
    assert EN["admin.keys.status_revoked"] in listed.text
    assert f"/keys/apps/{app_id}/{key_id}/revoke" not in listed.text  # nothing left to revoke
    assert client.get(f"{base}/keys/apps/{app_id}/nope/revoke").status_code == 404
    assert client.get(f"{base}/keys/apps/0000000000000000/{key_id}/revoke").status_code == 404


# -- resident sign-in -----------------------------------------------------------------------------

def test_resident_signs_in_with_a_code_and_sees_their_card(client, platform, clock):
    card = apply(client)
    page = client.get("/sign-in?lang=zh")
    assert page.status_code == 200 and ZH["sign_in.title"] in page.text and 'type="tel"' in page.text

    asked = ask_code(client, "139 1234 5678", lang="zh")
    assert asked.status_code == 303 and asked.headers["location"] == "/sign-in/code"
    sealed = next(c for c in asked.headers.get_list("set-cookie") if c.startswith("ehc_sign_in_phone="))
    assert PHONE not in sealed and "5678" not in sealed.split(";")[0] and "httponly" in sealed.lower()

    code_page = client.get("/sign-in/code")
    seen = text_of(code_page.text)
    assert ZH["sign_in.code_sent_to"].format(phone="139****5678") in seen and ZH["flash.code_sent"] in seen
    assert ZH["sign_in.dev_hint"] in seen and 'href="/dev/outbox"' in code_page.text
    assert 'autocomplete="one-time-code"' in code_page.text

    outbox = client.get("/dev/outbox")
    assert outbox.status_code == 200 and sent_code(platform) in outbox.text and "139****5678" in outbox.text
    assert PHONE not in outbox.text

    signed = enter_code(client, sent_code(platform))
    assert signed.status_code == 303 and signed.headers["location"] == "/me"
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("ehc_resident="))
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()

    me = client.get("/me")
    assert me.status_code == 200 and me.headers["cache-control"] == "no-store"
    seen = text_of(me.text)
    assert NAME in seen  # in full: it is them
    assert f"{NUMBER[:3]}{'*' * 11}{NUMBER[-4:]}" in seen and NUMBER not in me.text  # the document stays masked
    assert f'data-ehc-id="{card["ehc_id"]}"' in me.text and ZH["status.normal"] in seen
    assert ZH["me.family_none"] in seen and ZH["account.signed_in_resident"] in seen
    # Signed in, the public pages lead to /me instead of to sign-in.
    home = client.get("/")
    assert 'href="/me"' in home.text and 'href="/sign-in"' not in home.text
    assert client.get("/sign-in", follow_redirects=False).headers["location"] == "/me"

    out = form_post(client, "/me", "/sign-out", {}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    assert client.get("/me", follow_redirects=False).headers["location"] == "/sign-in"


def test_code_mistakes_rate_limits_and_a_burnt_code(client, platform, clock):
    apply(client)
    ask_code(client)
    code = sent_code(platform)
    wrong_code = "000000" if code != "000000" else "111111"
    wrong = enter_code(client, wrong_code)
    assert wrong.status_code == 401
    assert EN["errors.otp_wrong"].format(attempts_left=4) in text_of(wrong.text)
    assert 'aria-invalid="true"' in re.search(r'<input[^>]*id="code"[^>]*>', wrong.text).group(0)

    # Asking again within a minute: the code already sent still works; the page says when to ask again.
    again = ask_code(client)
    assert again.status_code == 303 and again.headers["location"] == "/sign-in/code"
    waiting = text_of(client.get("/sign-in/code").text)
    assert re.search(EN["flash.code_recently_sent"].replace("{value}", r"\d+").split(":")[0], waiting)
    resend = form_post(client, "/sign-in/code", "/sign-in/send-code", {"resend": "1"}, follow_redirects=False)
    assert resend.status_code == 303

    for _ in range(4):
        last = enter_code(client, wrong_code)
    assert last.status_code == 401 and EN["errors.otp_burnt"] in last.text
    burnt = enter_code(client, code)  # the right code no longer works either
    assert EN["errors.otp_burnt"] in burnt.text and "ehc_resident=" not in burnt.headers.get("set-cookie", "")

    clock.advance(seconds=61)
    resent = form_post(client, "/sign-in/code", "/sign-in/send-code", {"resend": "1"}, follow_redirects=False)
    assert resent.status_code == 303
    assert EN["flash.code_resent"] in client.get("/sign-in/code").text
    assert enter_code(client, sent_code(platform)).headers["location"] == "/me"

    bad_phone = ask_code(client, "12345")
    assert bad_phone.status_code == 422 and EN["errors.phone_malformed"] in bad_phone.text
    for _ in range(8):  # up to ten codes a day for one phone
        clock.advance(seconds=61)
        assert ask_code(client).status_code == 303
    clock.advance(seconds=61)
    daily = ask_code(client)
    assert daily.status_code == 429
    assert re.search(EN["errors.otp_daily_limit_reached"].split("{")[0], text_of(daily.text))
    assert "hours" in text_of(daily.text)


def test_adults_sharing_a_phone_give_their_document_ending(client, platform, clock):
    apply(client)
    wife_number = resident_id(born=date(1987, 2, 3), sequence=40, male=False)
    wife = apply(client, name="李丽", number=wife_number, born="1987-02-03", sex="2")
    ask_code(client, lang="zh")
    code = sent_code(platform)
    choose = enter_code(client, code)
    assert choose.status_code == 409 and ZH["errors.resident_choice_required"] in choose.text
    assert 'id="document_last4"' in choose.text and f'value="{code}"' in choose.text
    mismatch = enter_code(client, code, document_last4="0000")
    assert mismatch.status_code == 401
    assert ZH["errors.document_last4_mismatch"].format(attempts_left=4) in text_of(mismatch.text)
    signed = enter_code(client, code, document_last4=wife_number[-4:].lower())
    assert signed.status_code == 303
    me = client.get("/me")
    assert "李丽" in me.text and f'data-ehc-id="{wife["ehc_id"]}"' in me.text


def test_password_sign_in(client, platform, clock):
    apply(client)
    resident_sign_in(client, platform)
    assert client.post("/api/v1/me/password", json={"new_password": "my own secret"}).status_code == 204
    client.cookies.clear()
    wrong = form_post(client, "/sign-in?lang=en", "/sign-in/password",
                      {"phone": PHONE, "password": "not my secret"}, follow_redirects=False)
    assert wrong.status_code == 401 and EN["errors.resident_sign_in_failed"] in wrong.text
    assert "<details class=\"form disclosure\" open>" in wrong.text and f'value="{PHONE}"' in wrong.text
    right = form_post(client, "/sign-in", "/sign-in/password",
                      {"phone": PHONE, "password": "my own secret", "next": "/me/access-log"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/me/access-log"
    assert client.get("/me/access-log").status_code == 200


def test_dev_outbox_does_not_exist_in_production(platform):
    from fastapi.testclient import TestClient

    from ehc.app import create_app
    from ehc.platform import Platform

    production = Platform(settings=dataclasses.replace(platform.settings, environment="production"), db=platform.db,
                          keys=platform.keys, vault=platform.vault)
    with TestClient(create_app(production), raise_server_exceptions=False) as client:
        outbox = client.get("/dev/outbox?lang=en")
        assert outbox.status_code == 404 and outbox.headers["content-type"].startswith("text/html")
        assert "SMS" not in outbox.text


# -- my card: family, lost --------------------------------------------------------------------

def test_add_a_child_and_report_the_childs_card_lost(client, platform, clock):
    mine = apply(client)
    resident_sign_in(client, platform)
    form = client.get("/me/family/add?lang=en")
    assert form.status_code == 200 and EN["relations.child"] in form.text

    invalid = form_post(client, "/me/family/add", "/me/family/add", {
        "relation": "child", "name": "王子涵", "document_type": "01", "document_number": bad_checksum(CHILD_NUMBER),
        "sex": "1", "birth_date": "2016-01-01"})
    assert invalid.status_code == 422 and EN["errors.document_checksum_mismatch"] in invalid.text
    assert 'value="王子涵"' in invalid.text

    added = form_post(client, "/me/family/add", "/me/family/add", {
        "relation": "child", "name": "王子涵", "document_type": "01", "document_number": CHILD_NUMBER,
        "sex": "1", "birth_date": "2016-01-01", "phone": ""}, follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == "/me"
    me = client.get("/me")
    seen = text_of(me.text)
    assert EN["flash.member_added"] in seen and "王子涵" in seen and EN["relations.child"] in seen
    assert CHILD_NUMBER not in me.text
    with platform.db.session() as session:
        child = session.scalar(select(Card).where(Card.ehc_id != mine["ehc_id"]))
    assert f'href="/me/report-lost?card={child.ehc_id}"' in me.text

    confirm = client.get(f"/me/report-lost?card={child.ehc_id}")
    assert confirm.status_code == 200 and "王子涵" in confirm.text and EN["report_lost.effect"] in confirm.text
    no_csrf = client.post("/me/report-lost", data={"card": child.ehc_id, "reason": "lost"})
    assert no_csrf.status_code == 403
    lost = form_post(client, f"/me/report-lost?card={child.ehc_id}", "/me/report-lost",
                     {"card": child.ehc_id, "reason": "lost", "details": "at school"}, follow_redirects=False)
    assert lost.status_code == 303
    me = client.get("/me")
    assert EN["flash.member_card_reported_lost"] in me.text and EN["status.lost"] in me.text
    with platform.db.session() as session:
        assert session.get(Card, child.ehc_id).status == "lost"
        assert session.get(Card, mine["ehc_id"]).status == "normal"
    twice = form_post(client, f"/me/report-lost?card={child.ehc_id}", "/me/report-lost",
                      {"card": child.ehc_id, "reason": "lost"})
    assert twice.status_code == 409 and EN["errors.card_transition_not_allowed"] in twice.text

    # A stranger's card is "not found", whether one asks for the page or posts the form.
    stranger = apply(client, name="赵六", number=resident_id(born=date(1970, 1, 1), sequence=8), born="1970-01-01",
                     phone="13700000000")
    assert client.get(f"/me/report-lost?card={stranger['ehc_id']}").status_code == 404
    refused = form_post(client, "/me", "/me/report-lost", {"card": stranger["ehc_id"], "reason": "stolen"})
    assert refused.status_code == 404 and EN["errors.card_not_found"] in refused.text
    assert client.get(f"/me/access-log?member={stranger['ehc_id']}").status_code == 404


def test_report_my_own_card_lost(client, platform, clock):
    mine = apply(client)
    resident_sign_in(client, platform)
    done = form_post(client, "/me/report-lost?lang=zh", "/me/report-lost", {"card": mine["ehc_id"], "reason": "stolen"},
                     follow_redirects=False)
    assert done.status_code == 303
    me = client.get("/me")
    assert ZH["flash.card_reported_lost"] in me.text and ZH["me.lost_note"] in me.text
    assert ZH["me.report_lost"] not in me.text
    events = client.get(f"/api/v1/cards/{mine['ehc_id']}/events",
                        headers={"Authorization": "Bearer none"})  # staff only: no peeking
    assert events.status_code == 401


# -- who looked at my data ------------------------------------------------------------------------

def test_access_log_shows_the_clerks_lookup(client, platform, clock, clerk):
    apply(client)
    looked = client.post("/api/v1/cards/lookup", json={"document": {"type": "01", "number": NUMBER}}, headers=clerk)
    assert looked.status_code == 200
    resident_sign_in(client, platform)
    log = client.get("/me/access-log?lang=en")
    assert log.status_code == 200
    seen = text_of(log.text)
    assert "Test People's Hospital" in seen and EN["roles.window_clerk"] in seen
    assert "Looked up the card by identity document" in seen and EN["access_log.action_read"] in seen
    operator = re.search(r'<dd class="code">(w\*+)</dd>', log.text)
    assert operator and operator.group(1) == "w******"  # masked, as the API masks it
    assert "window_clerk-" not in log.text
    assert client.get("/me/access-log?lang=zh").text.count("凭证件查询电子健康卡") >= 1
    # The same entries as the API's answer for the same resident.
    api = client.get("/api/v1/me/access-log").json()["items"]
    assert [f"#{i['ref']}" for i in api] == re.findall(r'<dd class="code">(#\d+)</dd>', log.text)


def test_card_page_without_a_card_links_to_sign_in(client):
    page = client.get("/card?lang=en")
    assert 'href="/sign-in"' in page.text and EN["card.none_signin_link"] in page.text
    assert "coming soon" not in page.text


# -- a real browser -------------------------------------------------------------------------------

def test_trust_pages_in_chromium(live_server, sqlite_platform, chromium):
    """A resident signs in with a code, adds a child and reports the child's card lost; a clerk looks
    the resident up through the API and the resident sees it in "who looked at my data"; an
    institution admin signs in, adds a department and a terminal, and creates a staff account."""
    import httpx
    from playwright.sync_api import expect

    from ehc.institutions.service import create_institution

    platform = sqlite_platform
    with platform.db.session() as session:
        create_institution(session, uscc="91510104MA6CN3X05K", name="锦江区第一人民医院", kind="hospital",
                           region_code="510104", level="3A", institution_id="inst-browser")
    new_staff(platform, "institution_admin", "inst-browser", "admin.jj", "张管理")
    new_staff(platform, "window_clerk", "inst-browser", "clerk.jj", "陈窗口")
    api = httpx.Client(base_url=live_server, timeout=30)
    assert api.post("/api/v1/cards", json={"name": NAME, "document": {"type": "01", "number": NUMBER}, "sex": "1",
                                           "birth_date": "1985-06-01", "phone": PHONE}).status_code == 201

    problems: list[str] = []  # script errors and Content-Security-Policy violations, on any page

    def watch(page) -> None:  # noqa: ANN001
        page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))

    # The resident: sign in with the code from the (development) SMS outbox.
    resident = chromium.new_context(locale="zh-CN", viewport={"width": 1024, "height": 900})
    page = resident.new_page()
    watch(page)
    page.goto(f"{live_server}/?lang=zh")
    page.get_by_role("link", name=ZH["nav.sign_in"]).click()
    page.wait_for_url("**/sign-in")
    page.locator("#phone").fill("139 1234 5678")
    page.get_by_role("button", name=ZH["sign_in.send_code"]).click()
    page.wait_for_url("**/sign-in/code")
    expect(page.locator(".lead")).to_contain_text("139****5678")
    expect(page.get_by_role("link", name=ZH["sign_in.dev_link"])).to_be_visible()
    page.locator("#code").fill(sent_code(platform))
    page.get_by_role("button", name=ZH["sign_in.submit"], exact=True).click()
    page.wait_for_url("**/me")
    expect(page.locator(".health-card-name")).to_have_text(NAME)
    expect(page.locator(".health-card .code").first).to_have_text(f"{NUMBER[:3]}{'*' * 11}{NUMBER[-4:]}")

    # Add a child, then report the child's card lost (with the confirmation step).
    page.get_by_role("link", name=ZH["me.add_member"]).click()
    page.wait_for_url("**/me/family/add")
    page.locator("#relation").select_option("child")
    page.locator("#name").fill("王子涵")
    page.locator("#sex-1").check()
    page.locator("#birth_date").fill("2016-01-01")
    page.locator("#document_type").select_option("01")
    page.locator("#document_number").fill(CHILD_NUMBER)
    page.get_by_role("button", name=ZH["family_add.submit"]).click()
    page.wait_for_url("**/me")
    expect(page.locator(".notice-flash")).to_contain_text(ZH["flash.member_added"])
    member = page.locator(".member").first
    expect(member.locator(".member-name")).to_contain_text("王子涵")
    member.get_by_role("link", name=ZH["me.member_report_lost"]).click()
    page.wait_for_url("**/me/report-lost?card=*")
    expect(page.locator(".confirm-card")).to_contain_text("王子涵")
    page.locator("#reason-lost").check()
    page.locator("#details").fill("放学路上丢失")
    page.get_by_role("button", name=ZH["report_lost.confirm"]).click()
    page.wait_for_url("**/me")
    expect(page.locator(".notice-flash")).to_contain_text(ZH["flash.member_card_reported_lost"])
    expect(member.locator(".badge")).to_have_text(ZH["status.lost"])
    expect(page.locator(".health-card .badge")).to_have_text(ZH["status.normal"])  # mine is untouched
    assert NUMBER not in page.content() and CHILD_NUMBER not in page.content()
    page.screenshot(path=str(ARTIFACTS / "me-zh.png"), full_page=True)

    # A window clerk looks the resident up through the API; the resident sees it, in English.
    token = api.post("/api/v1/auth/staff/token", json={"username": "clerk.jj", "password": PASSWORD}).json()
    looked = api.post("/api/v1/cards/lookup", json={"document": {"type": "01", "number": NUMBER}},
                      headers={"Authorization": f"Bearer {token['access_token']}"})
    assert looked.status_code == 200
    page.locator("#main").get_by_role("link", name=ZH["me.access_log_link"]).click()
    page.wait_for_url("**/me/access-log")
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**/me/access-log?lang=en")
    first = page.locator(".access-event").first
    expect(first.locator(".access-who")).to_have_text("锦江区第一人民医院")
    expect(first.locator(".access-purpose")).to_have_text("Looked up the card by identity document")
    expect(first).to_contain_text(EN["roles.window_clerk"])
    expect(first).to_contain_text("c*****")  # the clerk's account, masked
    assert "clerk.jj" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "access-log-en.png"), full_page=True)

    # On a phone: nothing runs off the side.
    page.set_viewport_size({"width": 375, "height": 812})
    for path in ("/me/access-log", "/me"):
        page.goto(f"{live_server}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
    page.screenshot(path=str(ARTIFACTS / "me-mobile-en.png"), full_page=True)
    resident.close()

    # The institution admin.
    admin = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = admin.new_page()
    watch(page)
    page.goto(f"{live_server}/staff")
    page.wait_for_url("**/staff/sign-in")
    expect(page.locator("h1")).to_have_text(ZH["staff_sign_in.title"])
    page.screenshot(path=str(ARTIFACTS / "staff-sign-in-zh.png"), full_page=True)
    page.locator("#username").fill("admin.jj")
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name=ZH["staff_sign_in.submit"]).click()
    page.wait_for_url("**/staff")
    expect(page.locator(".account-role")).to_have_text(ZH["roles.institution_admin"])
    page.get_by_role("link", name=ZH["staff_home.admin_link"]).click()
    page.wait_for_url("**/staff/institution/inst-browser")

    page.locator(".tabs").get_by_role("link", name=ZH["admin.tabs.departments"]).click()
    page.locator("#code").select_option("0304")
    page.get_by_role("button", name=ZH["admin.departments.add"]).click()
    expect(page.locator(".notice-flash")).to_contain_text("0304")
    expect(page.locator("#department-0304")).to_contain_text("心血管内科专业")

    page.locator(".tabs").get_by_role("link", name=ZH["admin.tabs.terminals"]).click()
    page.locator("#terminal_id").fill("W01")
    page.locator("#role").select_option("window")
    page.locator("#department_code").select_option("0304")
    page.locator("#name").fill("门诊一楼 1 号窗口")
    page.get_by_role("button", name=ZH["admin.terminals.add"]).click()
    expect(page.locator("#terminal-W01")).to_contain_text("门诊一楼 1 号窗口")
    page.locator("#terminal_id").fill("K01")
    page.locator("#role").select_option("kiosk")
    page.get_by_role("button", name=ZH["admin.terminals.add"]).click()
    expect(page.locator("#terminal-K01")).to_contain_text(ZH["admin.terminals.type"].format(type="02"))
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**/terminals?lang=en")
    expect(page.locator("#terminal-W01")).to_contain_text("Service window")
    page.screenshot(path=str(ARTIFACTS / "admin-terminals-en.png"), full_page=True)

    page.locator(".tabs").get_by_role("link", name=EN["admin.tabs.staff"]).click()
    page.locator("#username").fill("li.nurse")
    page.locator("#display_name").fill("李护士")
    page.locator("#role").select_option("nurse")
    page.locator("#department_code").select_option("0304")  # health records' department grants read it
    page.locator("#password").fill("long enough pw")
    page.get_by_role("button", name=EN["admin.staff.add"]).click()
    expect(page.locator(".notice-flash")).to_contain_text("li.nurse")
    expect(page.locator("#staff-li\\.nurse")).to_contain_text(EN["roles.nurse"])
    expect(page.locator("#staff-li\\.nurse select[name=department_code]")).to_have_value("0304")
    page.locator("#staff-li\\.nurse select[name=department_code]").select_option("")
    page.locator("#staff-li\\.nurse form.staff-department button").click()
    expect(page.locator(".notice-flash")).to_contain_text("li.nurse")
    expect(page.locator("#staff-li\\.nurse select[name=department_code]")).to_have_value("")
    page.screenshot(path=str(ARTIFACTS / "admin-staff-en.png"), full_page=True)

    # An app of the hospital and its public key; the private key never leaves the test.
    from ehc.crypto import SM2PrivateKey

    public = SM2PrivateKey.generate().public_key
    page.locator(".tabs").get_by_role("link", name=EN["admin.tabs.keys"]).click()
    page.locator("#app_name").fill("HIS outpatient")
    page.get_by_role("button", name=EN["admin.keys.create"]).click()
    expect(page.locator(".notice-flash")).to_contain_text("HIS outpatient")
    page.get_by_label(EN["admin.keys.public_key"]).fill(public.to_pem().decode())
    page.get_by_role("button", name=EN["admin.keys.add_key"]).click()
    expect(page.locator(f'[data-fingerprint="{public.fingerprint}"]')).to_be_visible()
    expect(page.locator(".table-keys tbody th")).to_have_text(public.fingerprint[:16])
    page.screenshot(path=str(ARTIFACTS / "admin-keys-en.png"), full_page=True)

    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server}/staff/institution/inst-browser/terminals")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(ARTIFACTS / "admin-terminals-mobile-en.png"), full_page=True)
    admin.close()
    api.close()
    assert problems == []

    # The nurse the admin created signs in through the API with the password the admin gave.
    assert httpx.post(f"{live_server}/api/v1/auth/staff/token",
                      json={"username": "li.nurse", "password": "long enough pw"}).status_code == 200
