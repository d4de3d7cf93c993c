"""The ``ehc`` command, run as a real subprocess against each database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from residents import resident_id

from ehc.cards import service as cards
from ehc.kit.context import Actor

EHC = [sys.executable, "-m", "ehc.cli"]


def run(env: dict, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*EHC, *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def _env(settings, keys: Path | None = None) -> dict:  # noqa: ANN001
    return {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(keys or settings.keys_dir),
            "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}


def test_keys_init_list_rotate(tmp_path, settings):
    env = _env(settings, tmp_path / "keys")
    run(env, "keys", "init")
    manifest = json.loads((tmp_path / "keys" / "keystore.json").read_text())
    assert sorted(k["kind"] for k in manifest["keys"]) == ["index", "qr", "qrref", "root", "sealing"]
    assert all(oct(p.stat().st_mode)[-3:] == "600" for p in (tmp_path / "keys").iterdir())
    run(env, "keys", "init", "--if-missing")
    assert json.loads((tmp_path / "keys" / "keystore.json").read_text()) == manifest  # nothing overwritten
    # A store made before a kind existed gets just that kind added; nothing else changes.
    older = {**manifest, "keys": [k for k in manifest["keys"] if k["kind"] != "qrref"]}
    (tmp_path / "keys" / "keystore.json").write_text(json.dumps(older))
    run(env, "keys", "init", "--if-missing")
    grown = json.loads((tmp_path / "keys" / "keystore.json").read_text())
    assert grown["keys"][:4] == older["keys"] and [k["kind"] for k in grown["keys"][4:]] == ["qrref"]
    manifest = grown
    rotated = run(env, "keys", "rotate", "sealing").stdout
    listing = run(env, "keys", "list").stdout
    assert "retired" in listing and rotated.split()[-1] in listing
    refused = run(env, "keys", "rotate", "index", ok=False)
    assert refused.returncode == 2 and "not rotated in place" in refused.stderr


def test_register_show_lookup_and_lifecycle(platform, settings):
    env = _env(settings)
    number = resident_id(sequence=61)
    out = run(env, "cards", "register", "周杰", number, "--phone", "13612345678", "--operator", "clerk-7").stdout
    card = json.loads(out)
    # Recorded as what it was: an operator at the command line (0800), not the service window.
    assert card["created"] is True and card["channel"] == "0800" and card["holder"]["name"] == "周*"
    assert json.loads(run(env, "cards", "lookup", number.lower()).stdout)["ehc_id"] == card["ehc_id"]
    run(env, "cards", "report-lost", card["ehc_id"], "--reason", "lost wallet", "--operator", "clerk-7")
    refused = run(env, "cards", "report-lost", card["ehc_id"], "--reason", "again", ok=False)
    assert refused.returncode == 2 and "card_transition_not_allowed" in refused.stderr
    history = run(env, "cards", "show", card["ehc_id"], "--history").stdout
    assert "report_lost" in history and "lost wallet" in history and "clerk-7" in history
    assert "+08:00" in history  # Beijing time, as the pages show it
    passport = json.loads(run(env, "cards", "register", "John Smith", "E11223344", "--document-type", "03",
                              "--sex", "1", "--birth-date", "1970-01-01").stdout)
    assert passport["status"] == "pending_review"
    unseen = run(env, "cards", "approve", passport["ehc_id"], "--document-type", "03", "--document-number", "E99999999",
                 ok=False)
    assert unseen.returncode == 2 and "review_document_mismatch" in unseen.stderr
    approved = run(env, "cards", "approve", passport["ehc_id"], "--document-type", "03", "--document-number", "E11223344")
    assert json.loads(approved.stdout)["status"] == "normal"
    bad = run(env, "cards", "register", "周杰", number[:-1] + ("1" if number[-1] != "1" else "2"), ok=False)
    assert bad.returncode == 2 and "document_checksum_mismatch" in bad.stderr


def test_cli_actions_are_shown_to_residents_as_the_operator_console(platform, settings, client):  # noqa: ANN001
    """Issue 10: what an operator does through ``ehc`` reached the resident's pages as "service window"."""
    from factories import resident_sign_in  # noqa: PLC0415 - only this test needs a signed-in resident

    env = _env(settings)
    card = json.loads(run(env, "cards", "register", "钱多多", resident_id(sequence=63), "--phone", "13612340063",
                          "--operator", "ops-3").stdout)
    run(env, "cards", "show", card["ehc_id"], "--operator", "ops-3")  # a read the resident will see
    run(env, "cards", "report-lost", card["ehc_id"], "--reason", "phoned the hotline", "--operator", "ops-3")
    # An operator really serving the resident at a window says so; an unknown code is refused plainly.
    run(env, "cards", "recover", card["ehc_id"], "--operator", "clerk-7", "--channel", "0100")
    bad = run(env, "cards", "recover", card["ehc_id"], "--channel", "9999", ok=False)
    assert bad.returncode == 2 and "channel_invalid" in bad.stderr and "Traceback" not in bad.stderr

    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        events = [(e.action, e.channel, e.operator) for e in cards.history(ctx, cards.get_card(ctx, card["ehc_id"]))]
    assert events == [("register", "0800", "ops-3"), ("report_lost", "0800", "ops-3"), ("recover", "0100", "clerk-7")]

    headers = resident_sign_in(client, platform, "13612340063")
    log = client.get("/api/v1/me/access-log", headers=headers).json()["items"]
    mine = [e for e in log if e["channel"] == "0800"]
    assert mine and not [e for e in log if e["channel"] == "0100" and "ops-3" in (e.get("operator") or "")]
    client.cookies.set("ehc_resident", headers["Authorization"].split()[1])
    en, zh = client.get("/me/access-log?lang=en").text, client.get("/me/access-log?lang=zh").text
    assert "Platform operator (command line)" in en and "平台运维人员（命令行）" in zh


def test_a_mistyped_day_is_a_usage_error_in_every_command(settings):
    """Every command that takes a calendar day says what it expects; none ends with a traceback."""
    env = _env(settings)
    for args in (("stats", "report", "2026-13-01"), ("stats", "run-schedules", "--day", "yesterday"),
                 ("payments", "reconcile", "03/12/2026"), ("family-doctors", "daily", "--day", "2026-02-30"),
                 ("appointments", "publish", "inst", "--first", "next monday")):
        done = run(env, *args, ok=False)
        assert done.returncode == 2 and "is yyyy-mm-dd" in done.stderr and "Traceback" not in done.stderr, (args, done)
