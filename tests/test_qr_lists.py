"""The published trust list and revocation list (docs/qr-format.md §11, §12), on SQLite and PostgreSQL.

Envelopes are checked with an independent SM2 implementation (gmalg); the revocation list follows the
card's life through the transition hook: lost, recovered, cancelled, reissued, and ``?since``.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta

import gmalg
import pytest
from fastapi.testclient import TestClient
from residents import resident_id
from sqlalchemy import select
from test_crypto_vectors import der_to_raw

from ehc.app import create_app
from ehc.cards import service as cards
from ehc.crypto import DEFAULT_USER_ID, KeyStore, KeyStoreError
from ehc.kit.context import Actor
from ehc.qr import codec, lists
from ehc.qr.models import Revocation

TRUST = "/.well-known/ehc/trust-list"
REVOCATIONS = "/.well-known/ehc/revocations"


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def opened(keys: KeyStore, envelope: dict) -> dict:
    """The payload, after gmalg (not our SM2 code) checked the root key's signature over its bytes."""
    root = keys.active("root")
    assert envelope["kid"] == root.id
    data, (r, s) = unb64(envelope["payload"]), der_to_raw(unb64(envelope["signature"]))
    verifier = gmalg.SM2(uid=DEFAULT_USER_ID, pk=keys.public_key(root.id).point)
    assert verifier.verify(data, r, s)
    assert not verifier.verify(data + b" ", r, s)
    return json.loads(data)


def fetch(client, path: str) -> dict:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"].startswith("public, max-age=")
    return answer.json()


def problem(answer, code: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json") and answer.json()["code"] == code


def register(platform, sequence: int) -> str:
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        made = cards.register(ctx, cards.Registration(
            name="李四", document_type="01", document_number=resident_id(born=date(1980, 1, 2), sequence=sequence),
            sex="1", birth_date=date(1980, 1, 2)))
        return made.card.ehc_id


def act(client, clerk, ehc_id: str, action: str) -> None:
    answer = client.post(f"/api/v1/cards/{ehc_id}/{action}", json={"reason": "test"}, headers=clerk)
    assert answer.status_code == 200, answer.text


def rid(platform, ehc_id: str, sequence: int) -> str:
    secret = platform.keys.secret(platform.keys.active("qrref").id)
    return codec.revocation_id(secret, ehc_id, sequence).hex()


def rows(platform) -> list[tuple[str, str, str]]:
    with platform.db.session() as session:
        return [(r.rid, r.action, r.reason) for r in session.scalars(select(Revocation).order_by(Revocation.serial))]


# -- trust list ----------------------------------------------------------------------------------

def test_trust_list_is_public_signed_by_the_root_key_and_lists_the_active_qr_key(client, platform):
    payload = opened(platform.keys, fetch(client, TRUST))
    assert payload["format"] == "ehc-trust-list" and payload["version"] == 1
    assert payload["serial"] == lists.trust_list_serial(platform.keys) >= 1
    active = platform.keys.active("qr")
    [entry] = [k for k in payload["keys"] if k["kid"] == active.id]
    assert unb64(entry["point"]) == platform.keys.public_key(active.id).point
    assert entry["alg"] == "SM2-SM3" and entry["accept_static"] is True
    assert entry["sign_until"] is None and entry["accept_dynamic_until"] is None
    assert entry["sign_from"] == datetime.fromisoformat(active.created_at).strftime("%Y-%m-%dT%H:%M:%SZ")
    issued = datetime.fromisoformat(payload["issued_at"])
    assert datetime.fromisoformat(payload["next_update"]) - issued == timedelta(days=1)

    root = fetch(client, "/.well-known/ehc/root-key")
    public = platform.keys.public_key(platform.keys.active("root").id)
    assert unb64(root["point"]) == public.point and root["fingerprint"] == public.fingerprint


def test_serial_grows_only_with_the_key_set_and_rotation_keeps_the_old_key(own_keys):
    keys = own_keys.keys
    client = TestClient(create_app(own_keys))
    first = opened(keys, fetch(client, TRUST))
    assert opened(keys, fetch(client, TRUST))["serial"] == first["serial"]  # no change, same serial

    old = keys.active("qr").id
    new = keys.rotate("qr")
    rotated = opened(keys, fetch(client, TRUST))
    assert rotated["serial"] == first["serial"] + 2  # a key created, a key retired
    by_kid = {k["kid"]: k for k in rotated["keys"]}
    assert set(by_kid) >= {old, new.id}
    retired = by_kid[old]
    retired_info = next(k for k in keys.infos("qr") if k.id == old)
    assert retired["accept_dynamic_until"] == datetime.fromisoformat(retired_info.not_after).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert datetime.fromisoformat(retired["sign_until"]) == datetime.fromisoformat(new.created_at) + lists.SIGNING_GRACE
    assert retired["accept_static"] is True and by_kid[new.id]["sign_until"] is None

    with pytest.raises(KeyStoreError):
        lists.withdraw_qr_key(keys, new.id)  # the active key: rotate first
    lists.withdraw_qr_key(keys, old)
    withdrawn = opened(keys, fetch(client, TRUST))
    assert withdrawn["serial"] == rotated["serial"] + 1 and old not in {k["kid"] for k in withdrawn["keys"]}
    assert KeyStore(keys.directory).infos("qr")[-2].status == "withdrawn"  # saved, and never deleted
    lists.withdraw_qr_key(keys, old)  # twice is once
    assert opened(keys, fetch(client, TRUST))["serial"] == withdrawn["serial"]


# -- revocation list -----------------------------------------------------------------------------

def test_revocation_list_follows_lost_recovered_cancelled_and_reissued_cards(client, platform, clerk):
    empty = opened(platform.keys, fetch(client, REVOCATIONS))
    assert empty["format"] == "ehc-revocation-list" and empty["serial"] == 0 and empty["rids"] == []
    a, b, c, d = (register(platform, n) for n in (21, 22, 23, 24))

    act(client, clerk, a, "report-lost")
    after_lost = opened(platform.keys, fetch(client, REVOCATIONS))
    assert after_lost["full"] is True and after_lost["rids"] == [rid(platform, a, 1)]
    act(client, clerk, a, "recover")
    assert opened(platform.keys, fetch(client, REVOCATIONS))["rids"] == []

    act(client, clerk, b, "cancel")  # normal -> cancelled
    act(client, clerk, c, "report-lost")
    act(client, clerk, c, "cancel")  # already listed as lost: not twice
    act(client, clerk, d, "reissue")  # the earlier issue's prints stop working
    act(client, clerk, d, "report-lost")
    act(client, clerk, d, "reissue")  # lost then reissued: the lost issue stays listed once

    assert rows(platform) == [
        (rid(platform, a, 1), "add", "lost"), (rid(platform, a, 1), "remove", "recovered"),
        (rid(platform, b, 1), "add", "cancelled"), (rid(platform, c, 1), "add", "lost"),
        (rid(platform, d, 1), "add", "reissued"), (rid(platform, d, 2), "add", "lost"),
    ]
    full = opened(platform.keys, fetch(client, REVOCATIONS))
    assert full["serial"] == 6
    assert full["rids"] == sorted([rid(platform, b, 1), rid(platform, c, 1), rid(platform, d, 1), rid(platform, d, 2)])
    assert rid(platform, d, 3) not in full["rids"]  # the current issue of d is good


def test_revocations_since_sends_only_the_changes(client, platform, clerk):
    a, b = register(platform, 31), register(platform, 32)
    act(client, clerk, a, "report-lost")
    serial = opened(platform.keys, fetch(client, REVOCATIONS))["serial"]
    act(client, clerk, a, "recover")
    act(client, clerk, b, "report-lost")

    changes = opened(platform.keys, fetch(client, f"{REVOCATIONS}?since={serial}"))
    assert changes["full"] is False and changes["since"] == serial and changes["serial"] == serial + 2
    assert changes["added"] == [rid(platform, b, 1)] and changes["removed"] == [rid(platform, a, 1)]
    same = opened(platform.keys, fetch(client, f"{REVOCATIONS}?since={serial + 2}"))
    assert same["added"] == same["removed"] == [] and same["serial"] == serial + 2
    from_zero = opened(platform.keys, fetch(client, f"{REVOCATIONS}?since=0"))
    assert from_zero["added"] == [rid(platform, b, 1)] and from_zero["removed"] == [rid(platform, a, 1)]

    problem(client.get(f"{REVOCATIONS}?since=abc"), "revocation_since_invalid")
    problem(client.get(f"{REVOCATIONS}?since=-1"), "revocation_since_invalid")
    ahead = client.get(f"{REVOCATIONS}?since={serial + 3}")
    problem(ahead, "revocation_since_unknown")
    assert ahead.json()["serial"] == serial + 2


def test_a_large_revocation_list_is_sent_compressed(client, platform):
    with platform.db.session() as session:
        session.add_all(Revocation(rid=f"{n:016x}", action="add", reason="lost") for n in range(2000))
    answer = client.get(REVOCATIONS, headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
    assert len(opened(platform.keys, answer.json())["rids"]) == 2000
