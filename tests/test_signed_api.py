"""The signed machine API for hospital systems (EHC-SM2-V1), on SQLite and PostgreSQL.

Through the public surfaces: the HTTP API (with ``ehc.client`` and with hand-built requests), the
``ehc apps`` CLI, and the documented OpenSSL + curl recipe run for real against a live server.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from factories import hospital_system, make_staff
from hypothesis import given, settings as hsettings, strategies as st
from residents import resident_id
from sqlalchemy import func, inspect, select, text

from ehc.apps import replay, service, signing
from ehc.apps.models import UsedNonce
from ehc.client import EhcClient, EhcError
from ehc.crypto import SM2PrivateKey, SM2PublicKey
from ehc.kit.clock import utcnow
from ehc.kit.context import Actor

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api-integration.md"
PROBLEM = "application/problem+json"


@dataclass
class Creds:
    app_id: str
    key_id: str
    key: SM2PrivateKey


def new_app(platform, institution: str, name: str = "HIS outpatient") -> Creds:  # noqa: ANN001
    """An app with one fresh key, made the way `ehc apps create` + `add-key` make it."""
    made = hospital_system(platform, institution, name)
    return Creds(made.app_id, made.key_id, made.private_key)


def add_key(platform, app_id: str) -> Creds:  # noqa: ANN001
    key = SM2PrivateKey.generate()
    with platform.db.session() as session:
        registered = service.add_key(platform.ctx(session, Actor.system()), app_id, key.public_key.to_pem().decode())
        return Creds(app_id, registered.key_id, key)


@pytest.fixture
def creds(platform, institution) -> Creds:  # noqa: ANN001
    return new_app(platform, institution)


@pytest.fixture
def ehc(client, creds) -> EhcClient:  # noqa: ANN001
    return EhcClient("http://testserver", creds.app_id, creds.key_id, creds.key.to_pem(), http=client,
                     operator="window-07")


def application(sequence: int = 31, **over) -> dict:  # noqa: ANN003
    body = {"name": "李小红", "document": {"type": "01", "number": resident_id(born=date(1979, 2, 3), sequence=sequence,
                                                                            male=False)},
            "sex": "2", "birth_date": "1979-02-03", "phone": "13712345678"}
    body.update(over)
    return body


def send(client, creds: Creds, method: str = "POST", path: str = "/api/v1/cards", query: str = "",  # noqa: ANN001
         body: bytes = b"", *, sign: dict | None = None, drop: tuple = (), replace: dict | None = None,
         extra: dict | None = None):
    """A hand-built signed request. ``sign`` changes what is signed (not what is sent), ``replace``
    and ``drop`` change the signing headers after signing."""
    what = {"method": method, "path": path, "query": query, "body": body, "app_id": creds.app_id,
            "key_id": creds.key_id, "timestamp": int(time.time()), "nonce": None, "key": creds.key}
    what.update(sign or {})
    headers = signing.sign(what.pop("key"), **what)
    headers.update(replace or {})
    for name in drop:
        headers.pop(name)
    headers.update(extra or {})
    if body:
        headers["Content-Type"] = "application/json"
    return client.request(method, path + (f"?{query}" if query else ""), content=body, headers=headers)


def table_counts(platform) -> dict[str, int]:  # noqa: ANN001
    """Rows in every table of the database: the whole footprint of a request."""
    names = [n for n in inspect(platform.db.engine).get_table_names() if n != "alembic_version"]
    with platform.db.engine.connect() as conn:
        return {n: conn.execute(text(f'SELECT COUNT(*) FROM "{n}"')).scalar_one() for n in names}


def nonce_count(platform) -> int:  # noqa: ANN001
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(UsedNonce))


# -- managing apps and keys ------------------------------------------------------------------------

def test_institution_admin_manages_its_apps_and_keys_over_the_api(platform, client, institution):  # noqa: ANN001
    admin = make_staff(platform, client, "institution_admin", institution)
    made = client.post("/api/v1/apps", json={"name": "HIS outpatient"}, headers=admin)
    assert made.status_code == 201, made.text
    app = made.json()
    assert re.fullmatch(r"[0-9a-f]{16}", app["app_id"]) and app["institution_id"] == institution and app["keys"] == []

    key = SM2PrivateKey.generate()
    pem = key.public_key.to_pem().decode()
    added = client.post(f"/api/v1/apps/{app['app_id']}/keys", json={"public_key_pem": pem}, headers=admin)
    assert added.status_code == 201, added.text
    assert added.json()["key_id"] == key.public_key.fingerprint[:16] and added.json()["status"] == "active"
    again = client.post(f"/api/v1/apps/{app['app_id']}/keys", json={"public_key_pem": pem}, headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "key_already_registered"
    bad = client.post(f"/api/v1/apps/{app['app_id']}/keys", json={"public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA"},
                      headers=admin)
    assert bad.status_code == 422 and bad.json()["code"] == "public_key_invalid"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    not_sm2 = client.post(f"/api/v1/apps/{app['app_id']}/keys", json={"public_key_pem": p256}, headers=admin)
    assert not_sm2.status_code == 422 and not_sm2.json()["code"] == "public_key_invalid"

    listed = client.get("/api/v1/apps", headers=admin).json()
    assert [a["app_id"] for a in listed] == [app["app_id"]] and listed[0]["keys"][0]["key_id"] == added.json()["key_id"]

    # The private key signs for the app now.
    with EhcClient("http://testserver", app["app_id"], added.json()["key_id"], key.to_pem(), http=client) as ehc:
        assert ehc.ping()["actor_kind"] == "machine"

    revoked = client.post(f"/api/v1/apps/{app['app_id']}/keys/{added.json()['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked" and revoked.json()["revoked_at"]
    assert revoked.json()["revoked_by"].startswith("institution_admin-")

    # Nobody else manages them: another institution's admin, a clerk, a machine, nobody at all.
    with platform.db.session() as session:
        from ehc.institutions.service import create_institution
        other = create_institution(session, uscc="91510100MA6123456W", name="Other Clinic", kind="clinic",
                                   region_code="510104").id
    stranger = make_staff(platform, client, "institution_admin", other)
    assert client.get(f"/api/v1/apps/{app['app_id']}", headers=stranger).json()["code"] == "app_not_found"
    assert client.get("/api/v1/apps", headers=stranger).json() == []
    assert client.post("/api/v1/apps", json={"name": "x", "institution_id": institution},
                       headers=stranger).json()["code"] == "institution_not_found"
    clerk = make_staff(platform, client, "window_clerk", institution)
    assert client.post("/api/v1/apps", json={"name": "x"}, headers=clerk).status_code == 403
    assert client.get("/api/v1/apps").status_code == 401
    # A platform admin manages every institution's apps, naming the institution.
    platform_admin = make_staff(platform, client, "platform_admin", None)
    assert client.post("/api/v1/apps", json={"name": "x"}, headers=platform_admin).json()["code"] == "institution_required"
    made_by_commission = client.post("/api/v1/apps", json={"name": "Kiosks", "institution_id": other},
                                     headers=platform_admin)
    assert made_by_commission.status_code == 201 and made_by_commission.json()["institution_id"] == other
    assert {a["app_id"] for a in client.get("/api/v1/apps", headers=platform_admin).json()} == {
        app["app_id"], made_by_commission.json()["app_id"]}


def test_an_app_holds_at_most_five_active_keys(platform, institution, creds):  # noqa: ANN001
    for _ in range(service.MAX_ACTIVE_KEYS - 1):
        add_key(platform, creds.app_id)
    with pytest.raises(Exception) as refused:
        add_key(platform, creds.app_id)
    assert getattr(refused.value, "code", None) == "too_many_keys"
    with platform.db.session() as session:
        service.revoke_key(platform.ctx(session, Actor.system()), creds.app_id, creds.key_id)
    add_key(platform, creds.app_id)  # room again


# -- the happy path through ehc.client -------------------------------------------------------------

def test_hospital_system_works_cards_through_the_client(platform, client, creds, ehc, institution):  # noqa: ANN001
    me = ehc.ping()
    assert me == {"actor_kind": "machine", "app_id": creds.app_id, "institution_id": institution,
                  "operator": "window-07", "channel": "0600", "body_sm3": signing.EMPTY_BODY_SM3}

    card = ehc.register(application(), idempotency_key="reg-0001")
    assert card["created"] is True and card["channel"] == "0600" and card["institution_id"] == institution
    retried = ehc.register(application(), idempotency_key="reg-0001")  # a retry after a lost answer
    assert retried["ehc_id"] == card["ehc_id"] and retried["created"] is True

    found = ehc.lookup("01", application()["document"]["number"].lower())
    assert found["ehc_id"] == card["ehc_id"] and found["holder"]["name"] == "李*红"
    assert ehc.get(card["ehc_id"])["status"] == "normal"
    assert ehc.report_lost(card["ehc_id"], reason="lost wallet")["status"] == "lost"
    with pytest.raises(EhcError) as twice:
        ehc.report_lost(card["ehc_id"], reason="again")
    assert twice.value.status == 409 and twice.value.code == "card_transition_not_allowed"
    assert ehc.recover(card["ehc_id"], reason="found it")["status"] == "normal"

    events = ehc.events(card["ehc_id"])
    assert [e["action"] for e in events] == ["register", "report_lost", "recover"]
    assert all(e["actor_kind"] == "machine" and e["actor_id"] == creds.app_id and e["institution_id"] == institution
               and e["operator"] == "window-07" and e["channel"] == "0600" for e in events)

    with pytest.raises(EhcError) as missing:
        ehc.lookup("01", resident_id(sequence=77))
    assert missing.value.status == 404 and missing.value.code == "card_not_found" and missing.value.detail

    # What needs a person stays with people: reviewing applications, managing apps.
    with pytest.raises(EhcError) as review:
        ehc.request("POST", f"/api/v1/cards/{card['ehc_id']}/approve", json={})
    assert review.value.status == 403 and review.value.code == "role_not_allowed"
    with pytest.raises(EhcError) as manage:
        ehc.request("POST", "/api/v1/apps", json={"name": "mine"})
    assert manage.value.status == 403
    # One nonce remembered per accepted request; none for anything else.
    assert nonce_count(platform) == 12


def test_operator_and_channel_headers(platform, client, creds):  # noqa: ANN001
    kiosk = EhcClient("http://testserver", creds.app_id, creds.key_id, creds.key.to_pem(), http=client, channel="0200")
    assert kiosk.ping()["channel"] == "0200" and kiosk.ping()["operator"] is None
    odd = EhcClient("http://testserver", creds.app_id, creds.key_id, creds.key.to_pem(), http=client, channel="9999")
    assert odd.ping()["channel"] == "0600"
    for platforms_own in ("0800", "0900"):  # the operator's command line, a registry migration: not a hospital's
        claimed = EhcClient("http://testserver", creds.app_id, creds.key_id, creds.key.to_pem(), http=client,
                            channel=platforms_own)
        assert claimed.ping()["channel"] == "0600"
    before = nonce_count(platform)
    long = EhcClient("http://testserver", creds.app_id, creds.key_id, creds.key.to_pem(), http=client, operator="x" * 65)
    with pytest.raises(EhcError) as refused:
        long.ping()
    assert refused.value.status == 400 and refused.value.code == "operator_invalid"
    assert nonce_count(platform) == before


def test_unsigned_callers_are_not_machines(client, creds):  # noqa: ANN001
    assert client.get("/api/v1/apps/ping").json()["actor_kind"] == "anonymous"
    lookup = client.post("/api/v1/cards/lookup", json={"document": {"type": "01", "number": resident_id()}})
    assert lookup.status_code == 401 and lookup.json()["code"] == "unauthenticated"


# -- every refusal: its own code, and no trace -----------------------------------------------------

NOW = "now"
REFUSALS = {
    # name: (send() keyword arguments, expected code)
    "no signature": ({"drop": (signing.HEADER_SIGNATURE,)}, "signature_headers_missing"),
    "no nonce": ({"drop": (signing.HEADER_NONCE,)}, "signature_headers_missing"),
    "no timestamp": ({"drop": (signing.HEADER_TIMESTAMP,)}, "signature_headers_missing"),
    "no app id": ({"drop": (signing.HEADER_APP_ID,)}, "signature_headers_missing"),
    "no key id": ({"drop": (signing.HEADER_KEY_ID,)}, "signature_headers_missing"),
    "short nonce": ({"sign": {"nonce": "abc123"}}, "signature_headers_missing"),
    "nonce with a dot": ({"sign": {"nonce": "abcdefgh.ijklmnop"}}, "signature_headers_missing"),
    "timestamp in ms with a dot": ({"replace": {signing.HEADER_TIMESTAMP: "1764115200.5"}}, "signature_headers_missing"),
    "signature not base64": ({"replace": {signing.HEADER_SIGNATURE: "not base64!"}}, "signature_headers_missing"),
    "unknown app": ({"sign": {"app_id": "0123456789abcdef"}}, "app_unknown"),
    "unknown key": ({"sign": {"key_id": "0123456789abcdef"}}, "key_unknown"),
    "key of another app": ({"other_app_key": True}, "key_unknown"),
    "revoked key": ({"revoked": True}, "key_revoked"),
    # Whole seconds on both sides and a request takes a moment: a margin keeps the test exact.
    "clock 303 s ahead": ({"sign": {"timestamp": 303}}, "timestamp_skew"),
    "clock 303 s behind": ({"sign": {"timestamp": -303}}, "timestamp_skew"),
    "tampered body": ({"sign": {"body": b"{}"}}, "signature_invalid"),
    "tampered path": ({"sign": {"path": "/api/v1/cards/temporary"}}, "signature_invalid"),
    "tampered query": ({"query": "trace=2", "sign": {"query": "trace=1"}}, "signature_invalid"),
    "query added": ({"query": "trace=2", "sign": {"query": ""}}, "signature_invalid"),
    "tampered method": ({"sign": {"method": "PUT"}}, "signature_invalid"),
    "wrong private key": ({"sign": {"key": SM2PrivateKey.generate()}}, "signature_invalid"),
    "signature of another request": ({"foreign_signature": True}, "signature_invalid"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_has_its_code_and_leaves_no_trace(case, platform, client, creds, institution):  # noqa: ANN001
    options, code = REFUSALS[case]
    options = {**options, "sign": dict(options.get("sign", {}))}
    if "timestamp" in options["sign"]:
        options["sign"]["timestamp"] = int(time.time()) + options["sign"]["timestamp"]
    if options.pop("other_app_key", False):
        options["sign"].update(key_id=new_app(platform, institution, "Kiosks").key_id)
    if options.pop("revoked", False):
        with platform.db.session() as session:
            service.revoke_key(platform.ctx(session, Actor.system()), creds.app_id, creds.key_id)
    if options.pop("foreign_signature", False):
        other = signing.sign(creds.key, method="GET", path="/api/v1/apps/ping", query="", body=b"",
                             app_id=creds.app_id, key_id=creds.key_id)
        options["replace"] = {signing.HEADER_SIGNATURE: other[signing.HEADER_SIGNATURE]}
    body = json.dumps(application()).encode()
    before = table_counts(platform)

    answer = send(client, creds, body=body, extra={"Idempotency-Key": "k-1", signing.HEADER_OPERATOR: "w-1"}, **options)

    assert answer.status_code == 401 and answer.headers["content-type"].startswith(PROBLEM), answer.text
    problem = answer.json()
    assert problem["code"] == code and problem["detail"] and problem["request_id"]
    if code == "signature_invalid":
        assert problem["string_to_sign"].startswith("EHC-SM2-V1\nPOST\n/api/v1/cards\n")
    if code == "timestamp_skew":
        assert abs(problem["server_time"] - time.time()) < 5
    assert table_counts(platform) == before  # no nonce, no person, no card, no event, no idempotency record
    # ... and the same request, signed right, goes through: the refusal did not burn anything.
    assert send(client, add_key(platform, creds.app_id) if case == "revoked key" else creds, body=body,
                extra={"Idempotency-Key": "k-1"}).status_code == 201


def test_an_app_over_its_rate_limit_is_refused_after_its_signature_and_keeps_its_nonce(platform, client, creds):  # noqa: ANN001
    from ehc.kit.ratelimit import RateLimiter

    platform.limiters["machine"] = RateLimiter(per_minute=4)  # bursts of 1
    assert send(client, creds, "GET", "/api/v1/apps/ping").status_code == 200
    # A stranger's garbage under the app's id does not spend the app's allowance ...
    assert send(client, creds, "GET", "/api/v1/apps/ping", sign={"key": SM2PrivateKey.generate()}).status_code == 401
    # ... a correctly signed request over the limit is refused, and its nonce is not spent.
    headers = signing.sign(creds.key, method="GET", path="/api/v1/apps/ping", query="", body=b"",
                           app_id=creds.app_id, key_id=creds.key_id)
    limited = client.get("/api/v1/apps/ping", headers=headers)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited" and limited.headers["Retry-After"]
    assert nonce_count(platform) == 1
    platform.limiters["machine"] = RateLimiter(per_minute=0)
    assert client.get("/api/v1/apps/ping", headers=headers).json()["actor_kind"] == "machine"  # same request, later


def test_timestamps_inside_the_window_are_accepted_both_ways(client, creds):  # noqa: ANN001
    for offset in (-297, 297):
        answer = send(client, creds, "GET", "/api/v1/apps/ping", sign={"timestamp": int(time.time()) + offset})
        assert answer.status_code == 200 and answer.json()["actor_kind"] == "machine", answer.text


def test_a_replay_is_refused_even_when_the_first_request_failed(platform, client, creds):  # noqa: ANN001
    body = json.dumps({"document": {"type": "01", "number": resident_id(sequence=88)}}).encode()
    headers = signing.sign(creds.key, method="POST", path="/api/v1/cards/lookup", query="", body=body,
                           app_id=creds.app_id, key_id=creds.key_id)
    headers["Content-Type"] = "application/json"
    first = client.post("/api/v1/cards/lookup", content=body, headers=headers)
    assert first.status_code == 404 and first.json()["code"] == "card_not_found"  # let in, then failed
    # Meanwhile the card appears; the captured request must not now succeed.
    assert client.post("/api/v1/cards", json={"name": "赵六", "document": json.loads(body)["document"]}).status_code == 201
    replayed = client.post("/api/v1/cards/lookup", content=body, headers=headers)
    assert replayed.status_code == 401 and replayed.json()["code"] == "nonce_replayed"
    assert nonce_count(platform) == 1


def test_concurrent_copies_of_one_request_pass_once(platform, client, creds):  # noqa: ANN001
    body = json.dumps(application(45)).encode()
    headers = {**signing.sign(creds.key, method="POST", path="/api/v1/cards", query="", body=body,
                              app_id=creds.app_id, key_id=creds.key_id), "Content-Type": "application/json"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/api/v1/cards", content=body, headers=headers), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [401] * 7, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 401} == {"nonce_replayed"}
    counts = table_counts(platform)
    assert counts["cards"] == 1 and counts["app_nonces"] == 1


def test_nonces_are_per_app_and_expire_with_their_window(platform, client, creds, institution, monkeypatch):  # noqa: ANN001
    other = new_app(platform, institution, "Kiosks")
    nonce = "shared-nonce-0123456789"
    assert send(client, creds, "GET", "/api/v1/apps/ping", sign={"nonce": nonce}).status_code == 200
    assert send(client, other, "GET", "/api/v1/apps/ping", sign={"nonce": nonce}).status_code == 200  # per app
    again = send(client, creds, "GET", "/api/v1/apps/ping", sign={"nonce": nonce})
    assert again.json()["code"] == "nonce_replayed"

    # Once the window of the first use is over, the nonce is free again (even before clean-up).
    with platform.db.session() as session:
        session.execute(UsedNonce.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    assert send(client, creds, "GET", "/api/v1/apps/ping", sign={"nonce": nonce}).status_code == 200
    assert send(client, creds, "GET", "/api/v1/apps/ping", sign={"nonce": nonce}).json()["code"] == "nonce_replayed"

    # Clean-up removes expired rows and nothing else.
    with platform.db.session() as session:
        session.add(UsedNonce(app_id=creds.app_id, nonce="old-nonce-0123456789", expires_at=utcnow() - timedelta(hours=1)))
    monkeypatch.setattr(replay.NONCES, "_next_purge", None)
    assert send(client, creds, "GET", "/api/v1/apps/ping").status_code == 200
    with platform.db.session() as session:
        left = set(session.scalars(select(UsedNonce.nonce)))
    assert "old-nonce-0123456789" not in left and nonce in left and len(left) == 2  # the other app's expired too


def test_key_rotation(platform, client, creds):  # noqa: ANN001
    new = add_key(platform, creds.app_id)
    assert send(client, creds, "GET", "/api/v1/apps/ping").status_code == 200  # old key, during the overlap
    assert send(client, new, "GET", "/api/v1/apps/ping").status_code == 200  # new key
    with platform.db.session() as session:
        service.revoke_key(platform.ctx(session, Actor.system()), creds.app_id, creds.key_id)
    old = send(client, creds, "GET", "/api/v1/apps/ping")
    assert old.status_code == 401 and old.json()["code"] == "key_revoked"
    rotated = EhcClient("http://testserver", new.app_id, new.key_id, new.key.to_pem(), http=client)
    assert rotated.ping()["app_id"] == creds.app_id


# -- the canonical form ----------------------------------------------------------------------------

def test_the_query_is_signed_by_meaning_not_by_spelling(client, creds):  # noqa: ANN001
    # Sent in another order and spelling than signed: the server reads the same parameters.
    answer = send(client, creds, "GET", "/api/v1/apps/ping", query="b=2&a=%7e+x&a=1",
                  sign={"query": "a=1&a=~%20x&b=2"})
    assert answer.status_code == 200, answer.text
    assert signing.canonical_query("b=2&a=%e5%bc%a0&a=1+1") == "a=%E5%BC%A0&a=1%201&b=2"
    assert signing.canonical_query("x=~&y=a/b&z=&w") == "w=&x=~&y=a%2Fb&z="
    assert signing.canonical_query("") == ""


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


@given(st.lists(st.tuples(_text, _text), max_size=6), st.randoms())
@hsettings(max_examples=200, deadline=None)
def test_canonical_query_is_order_free_and_keeps_every_pair(pairs, rng):  # noqa: ANN001
    from urllib.parse import urlencode

    shuffled = list(pairs)
    rng.shuffle(shuffled)
    canonical = signing.canonical_query(urlencode(pairs))
    assert canonical == signing.canonical_query(urlencode(shuffled))
    assert signing.canonical_query(canonical) == canonical  # canonical form is a fixed point
    assert sorted(parse_qsl(canonical, keep_blank_values=True)) == sorted(pairs)  # nothing lost or altered
    assert re.fullmatch(r"[A-Za-z0-9\-._~%=&]*", canonical)


def test_the_docs_example_string_is_what_the_code_builds():
    block = re.search(r"<!-- example:string-to-sign -->\s*```text\n(.*?)\n```", DOC.read_text(), re.S).group(1)
    built = signing.string_to_sign(
        method="POST", path="/api/v1/cards/lookup", query="b=2&a=%E5%BC%A0&a=1+1",
        body=b'{"document":{"type":"01","number":"11010519491231002X"}}', timestamp="1764115200",
        nonce="q3b0Yk5W8mUJxZ1tA7rC2dLf", app_id="5f2c9a7e01b34d68", key_id="9c1e4b7a2d3f8e60")
    assert block == built


def test_openssl_verifies_what_the_client_signs(tmp_path):  # noqa: ANN001
    key = SM2PrivateKey.generate()
    headers = signing.sign(key, method="POST", path="/api/v1/cards/lookup", query="a=1", body=b'{"x":1}',
                           app_id="5f2c9a7e01b34d68", key_id="9c1e4b7a2d3f8e60")
    message = signing.string_to_sign(method="POST", path="/api/v1/cards/lookup", query="a=1", body=b'{"x":1}',
                                     timestamp=headers[signing.HEADER_TIMESTAMP], nonce=headers[signing.HEADER_NONCE],
                                     app_id="5f2c9a7e01b34d68", key_id="9c1e4b7a2d3f8e60")
    (tmp_path / "pub.pem").write_bytes(key.public_key.to_pem())
    (tmp_path / "msg").write_bytes(message.encode())
    (tmp_path / "sig").write_bytes(base64.b64decode(headers[signing.HEADER_SIGNATURE]))
    verified = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey",
                               str(tmp_path / "pub.pem"), "-pkeyopt", "distid:1234567812345678",
                               "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig")],
                              capture_output=True, text=True)
    assert verified.returncode == 0 and "Signature Verified Successfully" in verified.stdout, verified.stderr


# -- the documented OpenSSL + curl recipe, against a live server ------------------------------------

def snippet(name: str) -> str:
    """A shell snippet of the integration guide, exactly as a reader would copy it."""
    import textwrap

    found = re.search(rf"<!-- snippet:{name} -->\n( *)```bash\n(.*?)\n\1```\n\s*<!-- /snippet:{name} -->",
                      DOC.read_text(), re.S)
    return textwrap.dedent(found.group(2))


# openssl and curl are installed by `make test` (Makefile: system-deps); a missing one fails here.
def test_the_openssl_and_curl_worked_example(platform, client, live_url, institution, tmp_path):  # noqa: ANN001
    admin = make_staff(platform, client, "institution_admin", institution)
    app_id = client.post("/api/v1/apps", json={"name": "HIS"}, headers=admin).json()["app_id"]
    env = {**os.environ, "EHC_API_URL": live_url, "EHC_APP_ID": app_id,
           "EHC_ADMIN_TOKEN": admin["Authorization"].split()[1]}

    onboarding = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet("onboarding")], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
    assert onboarding.returncode == 0, onboarding.stderr + onboarding.stdout
    computed_key_id, answer = onboarding.stdout.split("\n", 1)
    registered = json.loads(answer)
    assert registered["status"] == "active" and registered["key_id"] == computed_key_id.strip()
    public = SM2PublicKey.from_pem((tmp_path / "app-key.pub.pem").read_bytes())
    assert registered["fingerprint"] == public.fingerprint

    number = "11010519491231002X"
    card = client.post("/api/v1/cards", json={"name": "张三", "document": {"type": "01", "number": number}})
    assert card.status_code == 201, card.text
    env.update(EHC_KEY_ID=registered["key_id"], EHC_APP_KEY=str(tmp_path / "app-key.pem"))
    called = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet("signed-call")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert called.returncode == 0, called.stderr + called.stdout
    ping, found = [json.loads(line) for line in re.findall(r"^\{.*\}$", called.stdout.replace("}{", "}\n{"), re.M)]
    assert ping["actor_kind"] == "machine" and ping["app_id"] == app_id and ping["channel"] == "0600"
    assert found["ehc_id"] == card.json()["ehc_id"]
    assert nonce_count(platform) == 2

    # The same recipe with a revoked key is refused with the documented code (curl fails with the body).
    client.post(f"/api/v1/apps/{app_id}/keys/{registered['key_id']}/revoke", headers=admin)
    refused = subprocess.run(["bash", "-uo", "pipefail", "-c", snippet("signed-call").rsplit("# Who am I?", 1)[0]
                              + "ehc_call GET /api/v1/apps/ping"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and json.loads(refused.stdout)["code"] == "key_revoked"


# -- the CLI ---------------------------------------------------------------------------------------

def test_cli_creates_apps_adds_and_revokes_keys_and_calls(platform, settings, live_url, institution, tmp_path):  # noqa: ANN001
    env = {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
           "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200", "EHC_API_URL": live_url}

    def ehc(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "ehc.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert (done.returncode == 0) == ok, done.stderr + done.stdout
        return done

    app = json.loads(ehc("apps", "create", "--institution", institution, "--name", "HIS outpatient").stdout)
    ehc("apps", "keygen", str(tmp_path / "his.pem"))
    assert oct((tmp_path / "his.pem").stat().st_mode)[-3:] == "600"
    key = json.loads(ehc("apps", "add-key", app["app_id"], str(tmp_path / "his.pem.pub")).stdout)
    assert key["status"] == "active" and app["app_id"] in ehc("apps", "list").stdout
    env.update(EHC_APP_ID=app["app_id"], EHC_KEY_ID=key["key_id"], EHC_APP_KEY=str(tmp_path / "his.pem"))

    me = json.loads(ehc("apps", "call", "GET", "/api/v1/apps/ping", "--operator", "clerk-3").stdout)
    assert me["actor_kind"] == "machine" and me["operator"] == "clerk-3"
    body = tmp_path / "apply.json"
    body.write_text(json.dumps(application(52), ensure_ascii=False))
    card = json.loads(ehc("apps", "call", "POST", "/api/v1/cards", "--json", f"@{body}",
                          "--idempotency-key", "cli-1").stdout)
    assert card["created"] is True and card["channel"] == "0600"

    revoked = ehc("apps", "revoke-key", app["app_id"], key["key_id"])
    # Without Redis settings on PostgreSQL, the command says the servers sharing Redis would not hear of it.
    assert ("EHC_REDIS_URL is not set here" in revoked.stderr) == (not settings.is_sqlite)
    refused = ehc("apps", "call", "GET", "/api/v1/apps/ping", ok=False)
    assert refused.returncode == 2 and "key_revoked" in refused.stderr
    shown = json.loads(ehc("apps", "show", app["app_id"]).stdout)
    assert shown["keys"][0]["status"] == "revoked"
    assert "institution_not_found" in ehc("apps", "create", "--institution", "nope", "--name", "x", ok=False).stderr
