"""Scheduled reports sent upward: each file of a schedule marked ``send_upstream`` is posted to the
upper-level platform, signed (EHC-SM2-V1) with the key that platform registered for us. A receiver
here checks every upload the way the upper platform would, with code of its own and OpenSSL for the
SM2 signature; it refuses the first try (503), so the file is sent again with the same
Idempotency-Key, and is then received once. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest
from factories import make_institution, make_staff, run_ehc, uscc
from sqlalchemy import select
from test_statistics import CHENGDU_HOSPITAL, DAY, DEYANG_HOSPITAL, Data
from test_statistics_schedules import run, schedule

from ehc.config import Settings
from ehc.crypto import SM2PrivateKey
from ehc.kit.clock import utcnow
from ehc.kit.context import Actor
from ehc.kit.errors import Problem
from ehc.statistics import sending
from ehc.statistics import service as stats
from ehc.statistics.models import ReportDelivery, ReportSchedule

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
APP_ID, KEY_ID = "prov-510000", "k1"


class Receiver:
    """The upper-level platform's upload endpoint, as that platform would check it."""

    def __init__(self, directory: Path, public_pem: bytes) -> None:
        self.directory = directory
        (directory / "pub.pem").write_bytes(public_pem)
        self.received: dict[str, dict] = {}  # Idempotency-Key -> what was received
        self.tries: list[str] = []
        self.refuse_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.tries.append(self.headers.get("Idempotency-Key", ""))
                status, answer = outer.take(self.command, self.path, dict(self.headers.items()), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/reports/upload"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        path, _, query = target.partition("?")
        if not self.signed_by_us(method, path, query, headers, body):
            return 401, {"code": "signature_invalid"}
        if self.refuse_next:
            self.refuse_next -= 1
            return 503, {"code": "busy"}
        params = dict(parse_qsl(query))
        if hashlib.sha256(body).hexdigest() != params["sha256"]:
            return 400, {"code": "digest_mismatch"}
        key = headers["Idempotency-Key"]
        if key not in self.received:
            self.received[key] = {"params": params, "body": body, "type": headers["Content-Type"],
                                  "id": f"R-{len(self.received) + 1}"}
        return 201, {"id": self.received[key]["id"]}

    def signed_by_us(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> bool:
        """The EHC-SM2-V1 string built here from the published rules, the signature checked by OpenSSL."""
        pairs = sorted((quote(k, safe=""), quote(v, safe="")) for k, v in parse_qsl(query, keep_blank_values=True))
        digest = subprocess.run([OPENSSL, "dgst", "-sm3", "-r"], input=body, capture_output=True, check=True)
        lines = ["EHC-SM2-V1", method, path, "&".join(f"{k}={v}" for k, v in pairs),
                 digest.stdout.split()[0].decode(), headers["X-EHC-Timestamp"], headers["X-EHC-Nonce"],
                 headers["X-EHC-App-Id"], headers["X-EHC-Key-Id"]]
        if (headers["X-EHC-App-Id"], headers["X-EHC-Key-Id"]) != (APP_ID, KEY_ID):
            return False
        (self.directory / "msg").write_bytes("\n".join(lines).encode())
        (self.directory / "sig").write_bytes(base64.b64decode(headers["X-EHC-Signature"]))
        checked = subprocess.run([OPENSSL, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey",
                                  str(self.directory / "pub.pem"), "-in", str(self.directory / "msg"), "-sigfile",
                                  str(self.directory / "sig"), "-pkeyopt", "distid:1234567812345678"],
                                 capture_output=True, check=False)
        return checked.returncode == 0 and b"Verified Successfully" in checked.stdout


@pytest.fixture
def receiver(tmp_path: Path) -> Receiver:
    key = SM2PrivateKey.generate()
    (tmp_path / "upstream-key.pem").write_bytes(key.to_pem())
    box = tmp_path / "receiver"
    box.mkdir()
    made = Receiver(box, key.public_key.to_pem())
    yield made
    made.server.shutdown()


@pytest.fixture
def settings(database_url: str, keys_dir: Path, tmp_path: Path, receiver: Receiver) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, keys_dir=keys_dir, upstream_url=receiver.url,
                    upstream_app_id=APP_ID, upstream_key_id=KEY_ID, upstream_key_file=str(tmp_path / "upstream-key.pem"))


@pytest.fixture
def data(platform, institution) -> Data:  # noqa: ANN001
    make_institution(platform, DEYANG_HOSPITAL, uscc=uscc("510600", 2), name="Deyang Hospital", region_code="510603")
    return Data(platform)


def rows(platform) -> list[ReportDelivery]:  # noqa: ANN001
    with platform.db.session() as session:
        found = list(session.scalars(select(ReportDelivery).order_by(ReportDelivery.id)))
        session.expunge_all()
        return found


def test_files_go_upward_signed_once_each_after_a_refusal(platform, data, receiver) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(3, institution=CHENGDU_HOSPITAL, region="510104", scene="010102", channel="0100")
    stats.refresh(platform.db)
    upward = schedule(platform, stats.ScheduleRequest("daily_report", region="510000", send_upstream=True))
    kept = schedule(platform, stats.ScheduleRequest("table", indicator="card_uses", by="channel", period="day"))

    receiver.refuse_next = 1  # the upper platform is busy at the first try
    first = run(platform, DAY + timedelta(days=1))
    assert len(first.made) == 4  # each schedule's files of DAY and DAY+1
    assert [e for _, e in first.sending.failed] == ["http_503: busy"]
    assert len(first.sending.sent) == 1  # the other file of the schedule sent upward went through
    waiting = [r for r in rows(platform) if r.schedule_id == upward and r.sent_at is None]
    assert len(waiting) == 1 and waiting[0].send_attempts == 1 and waiting[0].send_error == "http_503: busy"
    assert waiting[0].next_send_at > utcnow() + sending.retry_after(1) - timedelta(seconds=30)
    assert run(platform, DAY + timedelta(days=1)).sending.sent == []  # not due again yet

    with platform.db.session() as session:  # a minute later
        session.get(ReportDelivery, waiting[0].id).next_send_at = utcnow() - timedelta(seconds=1)
    again = run(platform, DAY + timedelta(days=1))
    assert [d for d, _ in again.sending.sent] == [waiting[0].id] and again.sending.failed == []

    # Each file received once, as it is on disk, its description signed in the query.
    assert len(receiver.received) == 2
    assert receiver.tries.count(f"{APP_ID}:{upward}:{waiting[0].due_on}") == 2  # the retry's key is the first's
    for row in rows(platform):
        if row.schedule_id == kept:
            assert (row.sent_at, row.send_attempts) == (None, 0)  # a schedule that keeps its files here
            continue
        assert row.sent_at is not None and row.receipt.startswith("R-") and row.send_error is None
        got = receiver.received[f"{APP_ID}:{upward}:{row.due_on}"]
        assert got["body"] == (platform.settings.data_dir / "reports" / row.path).read_bytes()
        assert got["params"] == {"report": "daily_report", "region": "510000", "from": row.start.isoformat(),
                                 "to": row.end.isoformat(), "schedule": str(upward), "due": row.due_on.isoformat(),
                                 "sha256": row.sha256}
        assert got["type"].startswith("text/csv")
    assert run(platform, DAY + timedelta(days=1)).sending.sent == []  # nothing is sent twice


def test_a_lost_answer_is_sent_again_and_received_once(platform, data, receiver) -> None:  # noqa: ANN001
    """The receiver took the file but its answer never came back (a crash between sending and
    recording leaves the lease to run out): the next try carries the same key, received once."""
    data.cards(1, institution=CHENGDU_HOSPITAL)
    stats.refresh(platform.db)
    upward = schedule(platform, stats.ScheduleRequest("daily_report", send_upstream=True), made_on=DAY + timedelta(days=1))
    run(platform, DAY + timedelta(days=1))
    (row,) = rows(platform)
    with platform.db.session() as session:  # as if the answer had been lost: not recorded as sent
        lost = session.get(ReportDelivery, row.id)
        lost.sent_at, lost.receipt, lost.next_send_at = None, None, utcnow() - timedelta(seconds=1)
    again = stats.send_upward(platform.db, lambda session: platform.ctx(session, Actor.system("stats-schedules")))
    assert [d for d, _ in again.sent] == [row.id]
    assert len(receiver.received) == 1 and receiver.tries == [f"{APP_ID}:{upward}:{row.due_on}"] * 2
    assert rows(platform)[0].receipt == "R-1" and rows(platform)[0].send_attempts == 2


def test_an_unreachable_platform_and_an_altered_file_wait_with_their_reason(platform, data, receiver) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    stats.refresh(platform.db)
    schedule(platform, stats.ScheduleRequest("daily_report", send_upstream=True), made_on=DAY + timedelta(days=1))
    receiver.server.shutdown()
    receiver.server.server_close()
    first = run(platform, DAY + timedelta(days=1))
    assert [e for _, e in first.sending.failed] == ["unreachable: ConnectError"]
    (row,) = rows(platform)
    (platform.settings.data_dir / "reports" / row.path).write_bytes(b"changed on disk")
    with platform.db.session() as session:
        session.get(ReportDelivery, row.id).next_send_at = utcnow() - timedelta(seconds=1)
    second = stats.send_upward(platform.db, lambda session: platform.ctx(session, Actor.system()))
    assert [e.split(":")[0] for _, e in second.failed] == ["file_altered"]
    assert rows(platform)[0].send_attempts == 2 and rows(platform)[0].sent_at is None
    assert sending.retry_after(1) == timedelta(minutes=1) and sending.retry_after(3) == timedelta(minutes=4)
    assert sending.retry_after(20) == sending.LONGEST_WAIT


def test_the_api_and_page_offer_sending_only_where_an_upper_platform_is_configured(platform, client, data,
                                                                                   settings) -> None:  # noqa: ANN001
    operator = make_staff(platform, client, "regional_operator", None, region="510000")
    made = client.post("/api/v1/statistics/schedules", json={"report": "daily_report", "send_upstream": True},
                       headers=operator)
    assert made.status_code == 201, made.text
    assert made.json()["send_upstream"] is True
    client.cookies.set("ehc_staff", operator["Authorization"].split()[1])
    page = client.get("/staff/statistics/schedules?lang=en")
    assert 'name="send_upstream"' in page.text and "CSV ↑" in page.text
    # The form's box: a table schedule sent upward too.
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    posted = client.post("/staff/statistics/schedules", follow_redirects=False, data={
        "csrf_token": token, "report": "table", "indicator": "card_uses", "by": "channel", "period": "day",
        "frequency": "daily", "format": "csv", "send_upstream": "yes"})
    assert posted.status_code == 303, posted.text
    with platform.db.session() as session:
        assert [s.send_upstream for s in session.scalars(select(ReportSchedule).order_by(ReportSchedule.id))] == [True, True]

    # The same platform without an upper one configured: refused with a stable code, nothing written.
    bare = dataclasses.replace(platform.settings, upstream_url="")
    with platform.db.session() as session:
        ctx = dataclasses.replace(platform.ctx(session, Actor.system()), settings=bare)
        with pytest.raises(Problem) as refused:
            stats.create_schedule(ctx, stats.ScheduleRequest("daily_report", send_upstream=True))
    assert refused.value.code == "upstream_not_configured"


def test_ehc_stats_run_schedules_sends_upward(platform, settings, data, receiver) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    stats.refresh(platform.db)
    schedule(platform, stats.ScheduleRequest("daily_report", send_upstream=True), made_on=DAY + timedelta(days=1))
    done = run_ehc(settings, "stats", "run-schedules", "--day", (DAY + timedelta(days=1)).isoformat(),
                   env={"EHC_UPSTREAM_URL": receiver.url, "EHC_UPSTREAM_APP_ID": APP_ID, "EHC_UPSTREAM_KEY_ID": KEY_ID,
                        "EHC_UPSTREAM_KEY_FILE": settings.upstream_key_file})
    assert done.returncode == 0, done.stderr
    assert "sent upward (receipt R-1)" in done.stdout and len(receiver.received) == 1
