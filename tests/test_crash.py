"""Crashes: `kill -9` of the server in the middle of a registration burst or a burst of QR verifications,
and of the importer in the middle of a file; on both DBs. After a restart every acknowledged write is there, nothing is
half-made and nothing is duplicated."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from factories import ROOT, person
from sqlalchemy import func, select, text
from test_import import Registry, resident

from ehc.audit import service as audit
from ehc.audit.models import AuditEvent
from ehc.cards import service as cards
from ehc.cards.models import Card, CardEvent
from ehc.kit.codes import Channel
from ehc.kit.context import Actor
from ehc.mpi.models import Person, PersonIdentifier
from ehc.qr import service as qr
from ehc.qr.models import CardUse, UsedCode


def _env(settings) -> dict[str, str]:  # noqa: ANN001
    return {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
            "EHC_DATA_DIR": str(settings.data_dir), "EHC_RATE_LIMIT_ANONYMOUS": "0", "COLUMNS": "200"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(settings, port: int) -> subprocess.Popen:  # noqa: ANN001
    server = subprocess.Popen([sys.executable, "-m", "ehc.cli", "serve", "--port", str(port)], env=_env(settings),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180  # a worker imports the whole platform: slow on a loaded machine
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the server did not start: " + server.stderr.read().decode()[-2000:])


def burst_then_kill(server: subprocess.Popen, port: int, items: Iterable, send: Callable[[httpx.Client, Any], Any],
                    *, until: int, auth=None, deadline: float = 120.0) -> tuple[dict, list]:  # noqa: ANN001
    """Eight clients take ``items`` in turn and ``send`` each (``send(http, item)`` answers what the
    server acknowledged, or None for a refusal that acknowledges nothing); once ``until`` are
    acknowledged (or ``deadline`` seconds pass), the server is killed with SIGKILL mid-burst.
    Returns (item -> acknowledged answer, every item sent)."""
    acknowledged: dict = {}
    sent: list = []
    lock = threading.Lock()
    queue = iter(items)

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, auth=auth) as http:
            while True:
                with lock:
                    item = next(queue, None)
                    if item is None:
                        return
                    sent.append(item)
                try:
                    answer = send(http, item)
                except httpx.HTTPError:
                    return  # the server is gone
                if answer is not None:
                    with lock:
                        acknowledged[item] = answer

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    stop = time.monotonic() + deadline
    while len(acknowledged) < until and time.monotonic() < stop:
        time.sleep(0.02)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    for thread in threads:
        thread.join(30)
    assert len(acknowledged) >= until
    return acknowledged, sent


def applicant(i: int) -> dict:
    return person("赵敏", date(1950 + i % 50, 1 + i % 12, 1 + i % 28), i % 100, i % 2 == 0,
                  region=f"5101{4 + i // 100:02d}", phone=f"137{i:08d}")


def test_kill_9_during_a_registration_burst_loses_no_acknowledged_card(platform):
    port = _free_port()
    server = start_server(platform.settings, port)

    def register(http: httpx.Client, i: int) -> str:
        answer = http.post("/api/v1/cards", json=applicant(i), headers={"Idempotency-Key": f"burst-{i}"})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["ehc_id"]

    # applicant -> the EHC ID the server answered with
    acknowledged, sent = burst_then_kill(server, port, range(10_000), register, until=40)

    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        for i, ehc_id in acknowledged.items():
            found = cards.find_by_document(ctx, "01", applicant(i)["document"]["number"])
            assert found is not None and found.ehc_id == ehc_id, i
        # Nothing half-made: every person has exactly one card, its issue event and its identifiers.
        people = session.scalar(select(func.count()).select_from(Person))
        assert session.scalar(select(func.count()).select_from(Card)) == people
        assert session.scalar(select(func.count(func.distinct(Card.person_id)))) == people
        assert session.scalar(select(func.count()).select_from(CardEvent)) == people
        assert session.scalar(select(func.count(func.distinct(PersonIdentifier.person_id)))) == people
        before = people

    # A client that never heard back retries with its key after the restart: the card it may have got
    # is returned, never a second one.
    server = start_server(platform.settings, port)
    try:
        unanswered = [i for i in sent if i not in acknowledged]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for i in unanswered + list(acknowledged)[:5]:
                answer = http.post("/api/v1/cards", json=applicant(i), headers={"Idempotency-Key": f"burst-{i}"})
                assert answer.status_code in (200, 201), answer.text
                if i in acknowledged:
                    assert answer.json()["ehc_id"] == acknowledged[i]
    finally:
        server.kill()
        server.wait()
    with platform.db.session() as session:
        people = session.scalar(select(func.count()).select_from(Person))
        assert people <= before + len(unanswered)
        assert session.scalar(select(func.count()).select_from(Card)) == people


def test_kill_9_of_the_importer_then_a_rerun_imports_each_row_once(platform, tmp_path: Path):
    registry = Registry()
    rows = 1200
    for i in range(rows):
        registry.add(resident(i))
    path = registry.save(tmp_path / "registry.csv")
    command = [sys.executable, "-m", "ehc.cli", "cards", "import", str(path), "--batch-size", "50", "--workers", "0",
               "--progress-every", "0"]
    importer = subprocess.Popen(command, env=_env(platform.settings), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    progress = 0
    for line in importer.stdout:  # a line per committed batch; kill it after the third
        progress += "rows/s" in line
        if progress == 3:
            os.kill(importer.pid, signal.SIGKILL)
            break
    importer.wait()
    assert importer.returncode == -signal.SIGKILL
    with platform.db.engine.connect() as conn:
        done = conn.execute(text("SELECT rows_done FROM card_import_jobs")).scalar()
        assert conn.scalar(select(func.count()).select_from(Card)) >= 150 and 150 <= done < rows

    again = subprocess.run(command, env=_env(platform.settings), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming job" in again.stdout
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Card)) == rows
        assert session.scalar(select(func.count()).select_from(Person)) == rows
        assert session.scalar(select(func.count()).select_from(CardEvent)) == rows


def test_kill_9_during_a_booking_burst_keeps_every_acknowledged_booking_within_capacity(platform, client,
                                                                                       institution):
    """Clerks booking 60 residents onto 4 periods of 10 window places while the server is killed:
    every booking answered 201 is there after the restart, no period holds more than its places, and
    each period's count of places taken matches its bookings (nothing half-made)."""
    from appointments_world import desk, publish

    from ehc.appointments.models import Booking, Period

    staff = desk(platform, client, institution)
    session = publish(client, staff["institution_admin"], quota_online=0, quota_window=10)
    periods = [p["id"] for p in session["periods"]]
    cards_made = []
    for i in range(60):
        made = client.post("/api/v1/cards", json=applicant(500 + i))
        assert made.status_code == 201, made.text
        cards_made.append(made.json()["ehc_id"])
    clerk = staff["window_clerk"]

    port = _free_port()
    server = start_server(platform.settings, port)

    def book(http: httpx.Client, item: tuple[int, str]) -> str | None:
        i, ehc_id = item
        answer = http.post("/api/v1/appointments/bookings", headers=clerk,
                           json={"period_id": periods[i % len(periods)], "ehc_id": ehc_id})
        assert answer.status_code in (201, 409), answer.text
        return answer.json()["reference"] if answer.status_code == 201 else None

    booked, _ = burst_then_kill(server, port, enumerate(cards_made), book, until=8)
    acknowledged = {reference: ehc_id for (_, ehc_id), reference in booked.items()}  # reference -> EHC ID

    server = start_server(platform.settings, port)  # a restart, then a look at what is there
    server.kill()
    server.wait()
    with platform.db.session() as session_:
        references = set(session_.scalars(select(Booking.reference)))
        assert set(acknowledged) <= references
        for period_id in periods:
            period = session_.get(Period, period_id)
            live = session_.scalar(select(func.count()).select_from(Booking).where(
                Booking.period_id == period_id, Booking.status.in_(("held", "booked", "arrived"))))
            assert live <= 10 and period.used_window == live, (period_id, live, period.used_window)


def test_kill_9_during_a_verification_burst_keeps_every_acknowledged_use_and_its_audit(platform, his,  # noqa: ANN001
                                                                                       institution):
    """Hospital systems verifying residents' dynamic codes when the server is killed: every verification
    answered 200 has its use and the audit event of the holder's read on disk; no code is used twice,
    before or after the restart; and the audit chain, once chained, is intact."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system(channel=Channel.WINDOW))
        holders = [cards.register(ctx, cards.Registration(name="钱多", document_type="01",
                                                           document_number=applicant(300 + i)["document"]["number"]))
                   .card for i in range(4)]
        codes = [qr.issue_dynamic(ctx, holders[i % 4]).text for i in range(400)]
    port = _free_port()
    server = start_server(platform.settings, port)

    def verify(http: httpx.Client, i: int) -> int:
        answer = http.post("/api/v1/qr/verify", json={"code": codes[i], "scene": "0101011", "channel": "0100"})
        assert answer.status_code == 200, answer.text
        return answer.json()["use_id"]

    # code -> the use id the server answered with
    acknowledged, sent = burst_then_kill(server, port, range(len(codes)), verify, until=40, auth=his)

    with platform.db.session() as session:
        rows = session.execute(select(CardUse.id, CardUse.nonce)).all()
        uses = {use_id for use_id, _ in rows}
        assert set(acknowledged.values()) <= uses  # every acknowledged use is there
        assert len({nonce for _, nonce in rows}) == len(rows)  # no code recorded twice
        claimed = session.scalar(select(func.count()).select_from(UsedCode))
        assert claimed == len(rows)  # a use exactly for each claimed code
        audited = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.purpose == "card.verify"))
        assert audited == len(rows)  # and the holder's read audited for each

    # After the restart, a code that was acknowledged is refused; one that was sent but never
    # answered is accepted only if the killed server had not committed it.
    server = start_server(platform.settings, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, auth=his) as http:
            for i in list(acknowledged)[:5]:
                again = http.post("/api/v1/qr/verify", json={"code": codes[i], "scene": "0101011", "channel": "0100"})
                # expired too once the restart outlasts the code's 120 s, on a loaded machine
                assert again.status_code == 422 and again.json()["code"] in ("qr_replayed", "qr_expired"), again.text
            for i in [i for i in sent if i not in acknowledged]:
                again = http.post("/api/v1/qr/verify", json={"code": codes[i], "scene": "0101011", "channel": "0100"})
                assert again.status_code in (200, 422), again.text
    finally:
        server.kill()
        server.wait()
    with platform.db.session() as session:
        audit.chain_pending(session)  # what the killed server's sweeper had not chained yet
    with platform.db.session() as session:
        report = audit.verify_chain(platform.ctx(session, Actor.system()))
        assert report.intact and report.unchained == 0, report.summary()
        rows = session.scalar(select(func.count()).select_from(CardUse))
        assert session.scalar(select(func.count(func.distinct(CardUse.nonce)))) == rows
        assert session.scalar(select(func.count()).select_from(UsedCode)) == rows
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.purpose == "card.verify")) == rows
