"""``ehc.terminal`` and ``ehc verify``: offline verification against the signed lists (docs/terminal.md).

The lists come from the real app (TestClient or a live uvicorn); codes are issued by the platform's
own service; images are drawn by the codec and read back with zxing-cpp; the offline path runs with
networking disabled, both in a subprocess inside ``unshare --net`` and in-process with connect blocked.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from factories import make_institution, make_staff
from fastapi.testclient import TestClient
from residents import resident_id
from test_qr_codec import PAYMENT
from typer.testing import CliRunner

from ehc.app import create_app
from ehc.cards import service as cards
from ehc.cards.models import Card
from ehc.cli import app as cli
from ehc.crypto import SM2PrivateKey
from ehc.kit.context import Actor
from ehc.platform import Platform
from ehc.qr import codec, lists
from ehc.qr import service as qr
from ehc.terminal import EXIT_CODES, Terminal, code_from_image

SCENE, CHANNEL = "0101011", "0200"


def register(platform: Platform, sequence: int = 51) -> str:
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        return cards.register(ctx, cards.Registration(
            name="赵六", document_type="01", document_number=resident_id(born=date(1975, 5, 5), sequence=sequence),
            sex="1", birth_date=date(1975, 5, 5))).card.ehc_id


def issue(platform: Platform, ehc_id: str, kind: str = "dynamic", now: datetime | None = None) -> str:
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        maker = qr.issue_dynamic if kind == "dynamic" else qr.issue_static
        return maker(ctx, session.get(Card, ehc_id), now=now).text


def root_pem(platform: Platform) -> bytes:
    return platform.keys.public_key(platform.keys.active("root").id).to_pem()


def synced(platform: Platform, http, path: Path) -> Terminal:
    terminal = Terminal(path, terminal_id="K01", department="0300")
    terminal.pin_root(root_pem(platform))
    terminal.sync(str(http.base_url), http=http)
    return terminal


def refused(code: str, call, *args, **kw) -> None:
    with pytest.raises(Exception) as caught:
        call(*args, **kw)
    assert getattr(caught.value, "code", None) == code, caught.value


def accept(terminal: Terminal, text: str, **kw):
    return terminal.verify(text, scene=SCENE, channel=CHANNEL, **kw)


@pytest.fixture
def card(platform: Platform) -> str:
    return register(platform)


@pytest.fixture
def terminal(platform: Platform, client, tmp_path: Path) -> Terminal:
    with synced(platform, client, tmp_path / "t1") as t:
        yield t


# -- what a terminal accepts and refuses ----------------------------------------------------------

def test_dynamic_static_and_two_in_one_codes_verify_offline_and_uses_are_queued(platform, terminal, card):
    dynamic = issue(platform, card)
    done = accept(terminal, dynamic)
    assert done.code_type is codec.CodeType.DYNAMIC and done.key_id == platform.keys.active("qr").id
    assert done.expires_at - done.issued_at == timedelta(seconds=qr.DYNAMIC_VALIDITY) and done.queued
    refused("qr_replayed", accept, terminal, dynamic)  # the same terminal: once

    printed = issue(platform, card, "static")
    assert accept(terminal, printed).expires_at is None
    assert accept(terminal, printed).code_type is codec.CodeType.STATIC  # a static code is not single use

    with platform.db.session() as session:
        seq = session.get(Card, card).sequence
    keys = platform.keys
    signer = codec.Signer(keys.active("qr").id, keys.signing_key(keys.active("qr").id))
    secret = keys.secret(keys.active("qrref").id)
    both = codec.combine(codec.issue_dynamic(signer, ref_secret=secret, ehc_id=card, sequence=seq,
                                             now=datetime.now(UTC), payment_template=PAYMENT), PAYMENT)
    assert accept(terminal, both).two_in_one

    queue = [json.loads(line) for line in (terminal.dir / "queue.jsonl").read_text().splitlines()]
    assert [q["code"] for q in queue] == [dynamic, printed, printed, both]
    assert {(q["scene"], q["channel"], q["terminal_id"], q["department"]) for q in queue} == {(SCENE, CHANNEL, "K01",
                                                                                              "0300")}
    # A restarted terminal still refuses the replay: the seen set is rebuilt from its files.
    with Terminal(terminal.dir) as again:
        refused("qr_replayed", accept, again, dynamic)


def test_a_static_code_at_a_payment_or_report_step_must_go_online(platform, terminal, card):
    printed = issue(platform, card, "static")
    for scene in ("0101051", "0101081"):
        refused("second_factor_online_only", terminal.verify, printed, scene=scene, channel=CHANNEL)
    assert terminal.verify(issue(platform, card), scene="0101051", channel=CHANNEL)  # a dynamic code is fine
    assert terminal.verify(printed, scene="010102", channel=CHANNEL)  # so is diagnosis


def test_forged_wrong_key_expired_and_future_codes_are_refused(platform, terminal, card):
    text = issue(platform, card)
    raw = codec.decode(text)
    tampered = codec.SignedCode(raw.payload, raw.payload_bytes, raw.signature[:-1] + bytes([raw.signature[-1] ^ 1]))
    refused("qr_signature_invalid", accept, terminal, tampered.text)
    refused("qr_malformed", accept, terminal, "hello")
    refused("qr_version_unsupported", accept, terminal, "EHC2:ABC")
    refused("card_use_codes_invalid", terminal.verify, text, scene="99", channel=CHANNEL)

    secret = platform.keys.secret(platform.keys.active("qrref").id)
    now = datetime.now(UTC)
    stranger = codec.issue_dynamic(codec.Signer("Q000000", SM2PrivateKey.generate()), ref_secret=secret,
                                   ehc_id=card, sequence=1, now=now)
    refused("qr_key_unknown", accept, terminal, stranger.text)
    active = platform.keys.active("qr").id
    impostor = codec.issue_dynamic(codec.Signer(active, SM2PrivateKey.generate()), ref_secret=secret, ehc_id=card,
                                   sequence=1, now=now)
    refused("qr_signature_invalid", accept, terminal, impostor.text)

    issued = datetime.fromtimestamp(raw.payload.issued_at, UTC)
    refused("qr_expired", accept, terminal, text, now=issued + timedelta(seconds=qr.DYNAMIC_VALIDITY + 15))
    assert accept(terminal, text, now=issued + timedelta(seconds=qr.DYNAMIC_VALIDITY + 14), record=False)
    refused("qr_not_yet_valid", accept, terminal, issue(platform, card), now=issued - timedelta(seconds=30))
    refused("list_stale", accept, terminal, issue(platform, card), now=terminal.trust.issued_at + timedelta(days=8))
    assert terminal.pending() == 0  # nothing refused was queued


def test_a_revoked_static_code_is_refused_after_sync_and_accepted_again_once_recovered(
        platform, client, terminal, card, clerk):
    printed = issue(platform, card, "static")
    assert accept(terminal, printed, record=False)
    assert client.post(f"/api/v1/cards/{card}/report-lost", json={"reason": "wallet"}, headers=clerk).status_code == 200
    assert accept(terminal, printed, record=False)  # not synced yet: the terminal cannot know
    terminal.sync(str(client.base_url), http=client)
    refused("qr_revoked", accept, terminal, printed)
    assert client.post(f"/api/v1/cards/{card}/recover", json={}, headers=clerk).status_code == 200
    report = terminal.sync(str(client.base_url), http=client)  # incremental: ?since=
    assert report.revoked == 0 and accept(terminal, printed, record=False)
    assert client.post(f"/api/v1/cards/{card}/reissue", json={}, headers=clerk).status_code == 200
    terminal.sync(str(client.base_url), http=client)
    refused("qr_revoked", accept, terminal, printed)  # the earlier issue's print
    assert accept(terminal, issue(platform, card, "static"), record=False)


def test_an_image_drawn_by_the_codec_is_read_by_zxing_and_verified(platform, terminal, card, tmp_path):
    for kind in ("dynamic", "static"):
        text = issue(platform, card, kind)
        image = tmp_path / f"{kind}.png"
        image.write_bytes(codec.render_png(text).data)
        assert code_from_image(image) == text
        assert accept(terminal, code_from_image(image), record=False)
    blank = tmp_path / "blank.png"
    blank.write_bytes(codec.render_png("EHC1:").data[:60])
    refused("qr_image_unreadable", code_from_image, blank)


# -- the lists: pinning, tampering, going back, rotation -----------------------------------------

def test_lists_are_checked_against_the_pinned_root(platform, client, terminal, tmp_path):
    stranger = Terminal(tmp_path / "other")
    stranger.pin_root(SM2PrivateKey.generate().public_key.to_pem())
    refused("list_signature_invalid", stranger.sync, str(client.base_url), http=client)
    refused("root_key_mismatch", stranger.pin_root, root_pem(platform))
    refused("root_key_missing", Terminal(tmp_path / "unpinned").sync, str(client.base_url), http=client)

    fingerprint = platform.keys.public_key(platform.keys.active("root").id).fingerprint
    by_print = Terminal(tmp_path / "by-fingerprint")
    refused("root_key_mismatch", by_print.pin_fingerprint, str(client.base_url), "00" * 32, http=client)
    by_print.pin_fingerprint(str(client.base_url), fingerprint, http=client)
    assert by_print.sync(str(client.base_url), http=client).trust_serial == terminal.trust.serial

    cached = json.loads((terminal.dir / "trust-list.json").read_text())
    cached["payload"] = cached["payload"][:-2] + ("A" if cached["payload"][-2] != "A" else "B") + cached["payload"][-1]
    (terminal.dir / "trust-list.json").write_text(json.dumps(cached))
    refused("list_signature_invalid", Terminal, terminal.dir)


def test_after_rotation_old_codes_verify_until_expiry_and_a_withdrawn_key_is_refused(
        platform, client, own_keys, card, institution, tmp_path):
    own = TestClient(create_app(own_keys))
    terminal = synced(own_keys, own, tmp_path / "t")
    old = own_keys.keys.active("qr").id
    old_dynamic, old_static = issue(own_keys, card), issue(own_keys, card, "static")
    new = own_keys.keys.rotate("qr").id
    new_dynamic = issue(own_keys, card)
    assert codec.decode(new_dynamic).payload.key_id == new
    refused("qr_key_unknown", accept, terminal, new_dynamic)  # not synced: the new key is unknown here
    terminal.sync(str(own.base_url), http=own)
    assert accept(terminal, old_dynamic).key_id == old  # the previous key's codes, until they expire
    assert accept(terminal, old_static).key_id == old
    assert accept(terminal, new_dynamic).key_id == new
    issued = datetime.fromtimestamp(codec.decode(old_dynamic).payload.issued_at, UTC)
    refused("qr_expired", accept, terminal, old_dynamic, now=issued + timedelta(seconds=200))

    # A code the retired key signed after its signing period (a stolen key) is refused.
    signer = codec.Signer(old, own_keys.keys.signing_key(old))
    secret = own_keys.keys.secret(own_keys.keys.active("qrref").id)
    late = datetime.now(UTC) + lists.SIGNING_GRACE + timedelta(minutes=5)
    backdated = codec.issue_dynamic(signer, ref_secret=secret, ehc_id=card, sequence=1, now=late)
    refused("qr_key_unknown", accept, terminal, backdated.text, now=late)

    lists.withdraw_qr_key(own_keys.keys, old)
    terminal.sync(str(own.base_url), http=own)
    refused("qr_key_unknown", accept, terminal, old_static)
    assert accept(terminal, issue(own_keys, card, "static")).key_id == new
    online = own.post("/api/v1/qr/verify", json={"code": old_static, "scene": SCENE, "channel": "0100"},
                      headers=make_staff(own_keys, own, "window_clerk", institution))
    assert online.status_code == 422 and online.json()["code"] == "qr_key_unknown"  # online too

    # The session's store still has the lower serial: a terminal that saw the newer list refuses it.
    refused("list_serial_lower", terminal.sync, str(client.base_url), http=client)


# -- no network at all ---------------------------------------------------------------------------

_OFFLINE_SCRIPT = """
import json, socket, sys
from ehc.terminal import Terminal
out = {}
with Terminal(sys.argv[1]) as t:
    for name, text in json.load(open(sys.argv[2])).items():
        try:
            out[name] = t.verify(text, scene="0101011", channel="0200").code_type.name
        except Exception as exc:
            out[name] = getattr(exc, "code", repr(exc))
    try:
        t.sync("http://127.0.0.1:9")
    except Exception as exc:
        out["sync"] = getattr(exc, "code", repr(exc))
try:
    socket.create_connection(("192.0.2.1", 80), timeout=2)
    out["network"] = "reachable"
except OSError:
    out["network"] = "none"
out["interfaces"] = [name for _, name in socket.if_nameindex()]
print(json.dumps(out))
"""


def _codes(platform: Platform, card: str) -> dict[str, str]:
    text = issue(platform, card)
    raw = codec.decode(text)
    forged = codec.SignedCode(raw.payload, raw.payload_bytes, bytes(64 - 1) + b"\x01").text
    return {"dynamic": text, "static": issue(platform, card, "static"), "forged": forged}


def test_offline_path_passes_inside_a_network_namespace_with_no_network(platform, terminal, card, tmp_path):
    # util-linux's unshare is part of every Debian system; the tests run as root (make test, .ci/run).
    assert shutil.which("unshare"), "util-linux unshare is needed to run the terminal with no network"
    assert subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode == 0, \
        "unshare --net is not permitted here (needs root or user namespaces)"
    codes = tmp_path / "codes.json"
    codes.write_text(json.dumps(_codes(platform, card)))
    run = subprocess.run(["unshare", "--net", sys.executable, "-c", _OFFLINE_SCRIPT, str(terminal.dir), str(codes)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["interfaces"] == ["lo"] and out["network"] == "none"
    assert out == {**out, "dynamic": "DYNAMIC", "static": "STATIC", "forged": "qr_signature_invalid",
                   "sync": "sync_failed"}


def test_offline_path_passes_with_socket_connect_blocked(platform, terminal, card, monkeypatch):
    def no_network(*_args, **_kw):
        raise OSError("networking is disabled in this test")

    codes = _codes(platform, card)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    with Terminal(terminal.dir) as offline:
        assert accept(offline, codes["dynamic"]).code_type is codec.CodeType.DYNAMIC
        assert accept(offline, codes["static"]).code_type is codec.CodeType.STATIC
        refused("qr_signature_invalid", accept, offline, codes["forged"])
        refused("sync_failed", offline.sync, "http://127.0.0.1:9")


# -- the command line ----------------------------------------------------------------------------

def test_ehc_verify_offline_and_terminal_sync_through_the_cli(platform, card, live_url, tmp_path):
    runner = CliRunner()
    cache = tmp_path / "cli-cache"
    pem = tmp_path / "root.pem"
    pem.write_bytes(root_pem(platform))
    synced_ = runner.invoke(cli, ["terminal", "sync", "--url", live_url, "--root-key", str(pem), "--cache", str(cache)])
    assert synced_.exit_code == 0, synced_.output
    assert f"keys {platform.keys.active('qr').id}" in synced_.output

    text = issue(platform, card)
    first = runner.invoke(cli, ["verify", text, "--offline", "--cache", str(cache), "--scene", SCENE])
    assert first.exit_code == 0, first.output
    assert "accepted" in first.output and platform.keys.active("qr").id in first.output
    assert "not visible offline" in first.output and card not in first.output
    again = runner.invoke(cli, ["verify", text, "--offline", "--cache", str(cache)])
    assert again.exit_code == EXIT_CODES["qr_replayed"] and "qr_replayed" in again.output
    junk = runner.invoke(cli, ["verify", "EHC1:%%%", "--offline", "--cache", str(cache)])
    assert junk.exit_code == EXIT_CODES["qr_malformed"]
    # Longer than a file name may be (two-in-one codes are): read as the code's text, not a crash.
    long = runner.invoke(cli, ["verify", "EHC1:" + "A" * 300, "--offline", "--cache", str(cache)])
    assert long.exit_code == EXIT_CODES["qr_version_unsupported"], long.output

    image = tmp_path / "printed.png"
    image.write_bytes(codec.render_png(issue(platform, card, "static")).data)
    printed = runner.invoke(cli, ["verify", str(image), "--offline", "--cache", str(cache)])
    assert printed.exit_code == 0 and "static" in printed.output and "never" in printed.output

    status = runner.invoke(cli, ["terminal", "status", "--cache", str(cache)])
    assert status.exit_code == 0 and "queued uses 0" in status.output  # no terminal id: nothing to upload
    assert "use not queued" in printed.output
    empty = runner.invoke(cli, ["verify", text, "--offline", "--cache", str(tmp_path / "empty")])
    assert empty.exit_code == 20 and "trust_list_missing" in empty.output
    by_print = runner.invoke(cli, ["terminal", "sync", "--url", live_url, "--cache", str(tmp_path / "fp"),
                                   "--root-fingerprint", "ab" * 32])
    assert by_print.exit_code == 20 and "root_key_mismatch" in by_print.output


# -- upload to the platform ----------------------------------------------------------------------

def test_uses_verified_offline_are_uploaded_in_batches_and_leave_the_queue(platform, client, institution, card,
                                                                            tmp_path):
    from ehc.apps import service as apps
    from ehc.client import EhcClient
    from ehc.institutions import service as institutions

    key = SM2PrivateKey.generate()
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        institutions.register_terminal(ctx, institutions.managed_institution(ctx, institution), terminal_id="K01",
                                       role="kiosk")
        made = apps.create_app(ctx, name="Kiosk fleet", institution_id=institution)
        key_id = apps.add_key(ctx, made.id, key.public_key.to_pem().decode()).key_id
    with synced(platform, client, tmp_path / "k01") as terminal:
        texts = [issue(platform, card) for _ in range(3)]
        for text in texts:
            accept(terminal, text)
        assert terminal.pending() == 3
        ehc = EhcClient(str(client.base_url), made.id, key_id, key.to_pem(), http=client)
        report = terminal.upload(ehc, batch_size=2)  # two batches
        assert report.sent == 3 and report.outcomes == {"recorded": 3} and report.left == 0
        assert terminal.pending() == 0
        refused("qr_replayed", accept, terminal, texts[0])  # still remembered after the upload
        assert terminal.upload(ehc).sent == 0
    with Terminal(tmp_path / "k01") as restarted:
        refused("qr_replayed", accept, restarted, texts[1])  # from seen.jsonl, across a restart


def test_a_malformed_queued_use_is_rejected_alone_and_the_queue_never_wedges(platform, card, live_url, tmp_path):
    """An older terminal queued uses without a terminal id: ``ehc terminal upload`` sends them, the platform
    answers that one ``rejected`` (``use_invalid``) and records the rest; nothing stays queued."""
    from ehc.apps import service as apps
    from ehc.institutions import service as institutions

    institution = make_institution(platform, "inst-wedge-01", uscc="12510000MB1234567X", name="Queue Hospital",
                                   kind="hospital", region_code="510104", level="3A")
    key = SM2PrivateKey.generate()
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        institutions.register_terminal(ctx, institutions.managed_institution(ctx, institution), terminal_id="K01",
                                       role="kiosk")
        made = apps.create_app(ctx, name="Kiosk fleet", institution_id=institution)
        key_id = apps.add_key(ctx, made.id, key.public_key.to_pem().decode()).key_id
    pem = tmp_path / "app.pem"
    pem.write_bytes(key.to_pem())
    cache = tmp_path / "old-terminal"
    cache.mkdir()
    at = datetime.now(UTC).isoformat()
    rows = [{"code": issue(platform, card), "scene": SCENE, "channel": CHANNEL, "terminal_id": None,
             "department": None, "at": at},
            {"code": issue(platform, card), "scene": SCENE, "channel": CHANNEL, "terminal_id": "K01",
             "department": None, "at": at},
            {"code": issue(platform, card), "scene": SCENE, "channel": CHANNEL, "terminal_id": "K01",
             "department": None, "at": "yesterday-ish"}]
    (cache / "queue.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    runner = CliRunner()
    args = ["terminal", "upload", "--cache", str(cache), "--url", live_url, "--app-id", made.id, "--key-id", key_id,
            "--private-key", str(pem)]
    uploaded = runner.invoke(cli, args)
    assert uploaded.exit_code == 0, uploaded.output
    assert "uploaded 3: 1 recorded, 2 rejected; 0 still queued" in uploaded.output
    status = runner.invoke(cli, ["terminal", "status", "--cache", str(cache)])
    assert "queued uses 0" in status.output
