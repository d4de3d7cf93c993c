"""QR codes on the platform: residents draw dynamic codes, window staff print static ones, hospital
systems and desk staff verify them online (single use, expiry, revocation, card-use records); on
SQLite and PostgreSQL. Every image is read back with zxing-cpp."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from factories import HOLDER_PERSON, make_staff
from residents import resident_id
from sqlalchemy import select
from test_qr_codec import _png_to_gray, _zxing_read

from ehc.cards.models import Card
from ehc.crypto import SM2PrivateKey
from ehc.kit.context import Actor
from ehc.qr import codec, online
from ehc.qr import service as qr
from ehc.qr.models import CardUse, UsedCode

PERSON = HOLDER_PERSON  # the ``holder`` fixture's card holder
PHONE = PERSON["phone"]
CST = timezone(timedelta(hours=8))


def draw(client, headers) -> dict:  # noqa: ANN001
    answer = client.post("/api/v1/me/qr/dynamic", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def scan(client, code: str, *, auth=None, headers=None, scene: str = "0101011", channel: str = "0100",  # noqa: ANN001
         **extra):  # noqa: ANN003, ANN201
    body = {"code": code, "scene": scene, "channel": channel, **extra}
    return client.post("/api/v1/qr/verify", json=body, auth=auth, headers=headers)


def uses(platform) -> list[CardUse]:  # noqa: ANN001
    with platform.db.session() as session:
        return list(session.scalars(select(CardUse).order_by(CardUse.id)))


def refused(answer, code: str) -> None:  # noqa: ANN001
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json") and answer.json()["code"] == code


# -- the happy path, then single use ---------------------------------------------------------------

def test_a_hospital_system_verifies_a_residents_dynamic_code_once(client, platform, institution, his, holder):  # noqa: ANN001
    ehc_id, resident = holder
    drawn = draw(client, resident)
    assert drawn["refresh_after"] == 60 and drawn["text"].startswith("EHC1:") and len(drawn["text"]) == 148
    expires = datetime.fromisoformat(drawn["expires_at"])
    assert timedelta(seconds=118) < expires - datetime.now(timezone.utc) <= timedelta(seconds=120)
    assert ehc_id not in drawn["text"] and draw(client, resident)["text"] != drawn["text"]

    answer = scan(client, drawn["text"], auth=his, terminal_id="W01", department="0300")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ehc_id"] == ehc_id and body["status"] == "normal" and body["status_code"] == "1"
    assert body["code_type"] == 0
    assert body["national_plaintext"] == f"{ehc_id}:0:{expires.astimezone(CST):%Y%m%d%H%M%S}"
    assert body["holder"]["name"] == "王小明" and body["holder"]["sex"] == "1"
    assert body["holder"]["birth_date"] == "1985-06-01"
    number = PERSON["document"]["number"]
    assert body["holder"]["document_type"] == "01" and body["holder"]["document_number"] != number
    assert "*" in body["holder"]["document_number"]

    refused(scan(client, drawn["text"], auth=his), "qr_replayed")  # single use

    [use] = uses(platform)
    assert (use.ehc_id, use.scene, use.channel, use.institution_id, use.terminal_id, use.department,
            use.code_type, use.actor_kind) == (ehc_id, "0101011", "0100", institution, "W01", "0300", 0, "machine")
    assert body["use_id"] == use.id

    # The resident sees where their card was used, and who opened their details for it.
    history = client.get("/api/v1/me/card-uses", headers=resident)
    assert history.status_code == 200, history.text
    [seen] = history.json()
    assert (seen["scene"], seen["scene_label"], seen["channel"], seen["institution_id"], seen["terminal_id"],
            seen["code_type"]) == ("0101011", "registration: booked", "0100", institution, "W01", 0)
    log = client.get("/api/v1/me/access-log", headers=resident)
    assert log.status_code == 200, log.text
    newest = log.json()["items"][0]
    assert (newest["purpose"], newest["action"], newest["institution_id"]) == ("card.verify", "read", institution)


def test_desk_staff_verify_and_the_codes_are_checked(client, platform, institution, holder):  # noqa: ANN001
    _, resident = holder
    doctor = make_staff(platform, client, "doctor", institution)
    refused(scan(client, draw(client, resident)["text"], headers=doctor, scene="123"), "card_use_codes_invalid")
    refused(scan(client, draw(client, resident)["text"], headers=doctor, channel="0900"), "card_use_codes_invalid")
    ok = scan(client, draw(client, resident)["text"], headers=doctor, scene="010102", channel="0300")
    assert ok.status_code == 200, ok.text
    [use] = uses(platform)
    assert (use.scene, use.channel, use.actor_kind, use.institution_id) == ("010102", "0300", "staff", institution)
    admin = make_staff(platform, client, "institution_admin", institution)
    assert scan(client, draw(client, resident)["text"], headers=admin).status_code == 403


# -- expiry, revocation, forgery, unknown keys -----------------------------------------------------

def test_a_dynamic_code_expires_after_120_seconds(client, platform, his, holder, monkeypatch):  # noqa: ANN001
    _, resident = holder
    first, second = draw(client, resident)["text"], draw(client, resident)["text"]
    issued = datetime.fromtimestamp(codec.decode(first).payload.issued_at, timezone.utc)
    monkeypatch.setattr(online, "utcnow", lambda: issued + timedelta(seconds=119))
    assert scan(client, first, auth=his).status_code == 200
    later = datetime.fromtimestamp(codec.decode(second).payload.issued_at, timezone.utc) + timedelta(seconds=120)
    monkeypatch.setattr(online, "utcnow", lambda: later)
    refused(scan(client, second, auth=his), "qr_expired")
    assert uses(platform) and len(uses(platform)) == 1


def test_a_lost_card_s_codes_are_revoked_and_no_new_ones_are_drawn(client, platform, his, holder):  # noqa: ANN001
    _, resident = holder
    drawn = draw(client, resident)["text"]
    assert client.post("/api/v1/me/card/report-lost", json={"reason": "lost phone"}, headers=resident).status_code == 200
    refused(scan(client, drawn, auth=his), "qr_revoked")
    again = client.post("/api/v1/me/qr/dynamic", headers=resident)
    assert again.status_code == 409 and again.json()["code"] == "card_not_active"
    assert uses(platform) == []


def test_static_code_printed_read_back_verified_and_revoked_by_a_reissue(client, platform, his, holder, clerk):  # noqa: ANN001
    ehc_id, _ = holder
    png = client.get(f"/api/v1/cards/{ehc_id}/qr/static.png", headers=clerk)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    [(text, _, ec_level)] = _zxing_read(*_png_to_gray(png.content))
    assert text.startswith("EHC1:") and ec_level == "M"
    svg = client.get(f"/api/v1/cards/{ehc_id}/qr/static.svg", headers=clerk)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content

    for _ in range(2):  # a static code is not single use
        answer = scan(client, text, auth=his, scene="010103", channel="0200")
        assert answer.status_code == 200, answer.text
        assert answer.json()["code_type"] == 1 and answer.json()["national_plaintext"] == f"{ehc_id}:1"
    assert [u.code_type for u in uses(platform)] == [1, 1]

    assert client.post(f"/api/v1/cards/{ehc_id}/reissue", json={}, headers=clerk).status_code == 200
    refused(scan(client, text, auth=his), "qr_revoked")  # the earlier issue's print
    reprinted = client.get(f"/api/v1/cards/{ehc_id}/qr/static.png", headers=clerk)
    [(new_text, _, _)] = _zxing_read(*_png_to_gray(reprinted.content))
    assert scan(client, new_text, auth=his).status_code == 200


def test_forged_and_unknown_key_codes_are_refused(client, platform, his, holder):  # noqa: ANN001
    ehc_id, resident = holder
    text = draw(client, resident)["text"]
    i = 60
    flipped = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
    answer = scan(client, flipped, auth=his)
    assert answer.status_code == 422 and answer.json()["code"] in ("qr_signature_invalid", "qr_malformed")
    refused(scan(client, "hello", auth=his), "qr_malformed")
    refused(scan(client, "EHC2:ABC", auth=his), "qr_version_unsupported")

    # A well-formed code signed by a key the platform never had.
    with platform.db.session() as session:
        card = session.get(Card, ehc_id)
        secret = platform.keys.secret(platform.keys.active("qrref").id)
        stranger = codec.Signer("Q000000", SM2PrivateKey.generate())
        alien = codec.issue_dynamic(stranger, ref_secret=secret, ehc_id=ehc_id, sequence=card.sequence,
                                    now=datetime.now(timezone.utc))
    refused(scan(client, alien.text, auth=his), "qr_key_unknown")
    # The right key id, the wrong key: forged.
    active = platform.keys.active("qr").id
    forged = codec.issue_dynamic(codec.Signer(active, SM2PrivateKey.generate()), ref_secret=secret, ehc_id=ehc_id,
                                 sequence=1, now=datetime.now(timezone.utc))
    refused(scan(client, forged.text, auth=his), "qr_signature_invalid")
    assert uses(platform) == []


def test_a_guardian_draws_a_code_for_a_family_member(client, platform, his, holder):  # noqa: ANN001
    _, resident = holder
    child = {"name": "王乐乐", "document": {"type": "01", "number": resident_id(born=date(2015, 3, 4), sequence=42)},
             "sex": "1", "birth_date": "2015-03-04", "relation": "child"}
    made = client.post("/api/v1/me/family", json=child, headers=resident)
    assert made.status_code == 201, made.text
    kid = made.json()["ehc_id"]
    drawn = client.post("/api/v1/me/qr/dynamic", params={"member": kid}, headers=resident)
    assert drawn.status_code == 200, drawn.text
    assert scan(client, drawn.json()["text"], auth=his).json()["ehc_id"] == kid
    assert len(client.get("/api/v1/me/card-uses", params={"member": kid}, headers=resident).json()) == 1
    assert client.get("/api/v1/me/card-uses", headers=resident).json() == []
    stranger = client.post("/api/v1/me/qr/dynamic", params={"member": "A" * 64}, headers=resident)
    assert stranger.status_code == 404


def test_dynamic_png_reads_back(client, holder):  # noqa: ANN001
    _, resident = holder
    png = client.get("/api/v1/me/qr/dynamic.png", headers=resident)
    assert png.status_code == 200 and png.headers["cache-control"] == "no-store"
    [(text, _, _)] = _zxing_read(*_png_to_gray(png.content))
    assert text.startswith("EHC1:") and len(text) == 148


def test_service_functions_take_the_time(platform, holder):  # noqa: ANN001
    ehc_id, _ = holder
    now = datetime(2026, 11, 26, 8, 30, tzinfo=timezone.utc)
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        card = session.get(Card, ehc_id)
        issued = qr.issue_dynamic(ctx, card, now=now)
        assert issued.expires_at == now + timedelta(seconds=120)
        use = qr.Use(scene="000000", channel="0100")
        with pytest.raises(codec.QRExpired):
            qr.verify(ctx, issued.text, use, now=now + timedelta(seconds=120))
        assert qr.verify(ctx, issued.text, use, now=now + timedelta(seconds=60)).national_plaintext.endswith(
            ":0:20261126163200")


def test_used_codes_are_forgotten_once_expired(platform, holder):  # noqa: ANN001
    ehc_id, _ = holder
    now = datetime(2026, 11, 26, 8, 30, tzinfo=timezone.utc)
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        card = session.get(Card, ehc_id)
        use = qr.Use(scene="000000", channel="0100")
        for _ in range(3):
            qr.verify(ctx, qr.issue_dynamic(ctx, card, now=now).text, use, now=now)
        assert qr.purge_used_codes(ctx, now + timedelta(seconds=120)) == 0  # within validity + skew
        assert qr.purge_used_codes(ctx, now + timedelta(seconds=136)) == 3
        assert session.scalars(select(UsedCode)).all() == []


def test_a_two_in_one_code_is_verified_by_its_health_part(client, platform, his, holder):  # noqa: ANN001
    ehc_id, _ = holder
    payment = bytes.fromhex("61144F07A0000003330101") + bytes.fromhex("5A0962258800000000001F")
    keys = platform.keys
    signer = codec.Signer(keys.active("qr").id, keys.signing_key(keys.active("qr").id))
    code = codec.issue_dynamic(signer, ref_secret=keys.secret(keys.active("qrref").id), ehc_id=ehc_id, sequence=1,
                               now=datetime.now(timezone.utc), payment_template=payment)
    text = codec.combine(code, payment)
    assert text.startswith("EHCM1:")
    answer = scan(client, text, auth=his, scene="0101051")
    assert answer.status_code == 200, answer.text
    assert answer.json()["ehc_id"] == ehc_id and answer.json()["code_type"] == 0
    refused(scan(client, text, auth=his), "qr_replayed")
