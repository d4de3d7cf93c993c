"""Audit trail appends per second on PostgreSQL, with 1, 4 and 8 concurrent writers, chain verified.

Headline figures: audit events appended *and chained* per second when 1, 4 and 8 writer processes
each run "request-shaped" transactions back to back: open a session, ``audit.service.record_access``
once, commit (the commit chains the event when the chain lock is free, or leaves it for the next
chaining when it is taken). Events a run leaves waiting are chained right after it and that time is
counted in. The reference, measured in the same run and interleaved with ours, is the same processes
inserting the same row and committing without chaining it (``seq`` left empty): what the chain
costs. Also measured, for the design note in docs/security.md: the alternative where every commit
*waits* for the chain lock (``chain_pending(wait=True)`` inside the transaction). At the end the
whole chain is verified with ``audit.service.verify_chain``; the last row says whether it held
(gap-free, every link recomputed, nothing left unchained) and how fast verification walks it.

Scratch database ``ehc_bench_audit`` (created and dropped through
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``, or ``EHC_BENCH_PG_ADMIN_URL``).
Writers are processes (fork), not threads, so Python's GIL does not cap them; the machine's core
count does (it is in the section's header): with more writers than cores the client side competes
with PostgreSQL for CPU.

Run alone: ``.venv/bin/python bench/bench_audit.py [--quick]``; or through ``bench/run.py``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from ehc.audit import service as audit
from ehc.audit.models import AuditEvent
from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit.clock import utcnow
from ehc.kit.codes import Channel
from ehc.kit.context import Actor, Vault
from ehc.migrate import upgrade
from ehc.platform import Platform

ADMIN_URL = os.environ.get("EHC_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_NAME = "ehc_bench_audit"
WRITERS = (1, 4, 8)
MODES = ("plain", "chained", "blocking")


def _admin(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _actor(n: int) -> Actor:
    return Actor(kind="staff", channel=Channel.WINDOW, id=f"bench-staff-{n}", institution_id=f"bench-inst-{n % 3}",
                 operator=f"bench-clerk-{n}", roles=frozenset({"window_clerk"}))


def _writer(url: str, keys_dir: str, n: int, mode: str, start, seconds: float, out) -> None:  # noqa: ANN001
    """One writer process: transactions back to back for ``seconds``; reports how many it committed."""
    settings = Settings(data_dir=Path(keys_dir).parent, database_url=url, keys_dir=Path(keys_dir))
    keys = KeyStore(settings.keys_dir)
    db = Database(url)
    platform = Platform(settings=settings, db=db, keys=keys, vault=Vault(keys))
    actor = _actor(n)
    count = 0
    start.wait()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        person = f"{n:08X}{count:024X}"
        with db.session() as session:
            if mode != "plain":
                audit.record_access(platform.ctx(session, actor), person, "read", "card.view")
                if mode == "blocking":  # the alternative design: queue for the lock, chain, commit
                    session.flush()
                    audit.chain_pending(session, wait=True)
            else:  # the reference: the same row, inserted and committed, left out of the chain
                session.execute(insert(AuditEvent.__table__).values(
                    at=utcnow(), action="read", purpose="card.view", person_id=person, actor_kind=actor.kind,
                    actor_id=actor.id, actor_role="window_clerk", institution_id=actor.institution_id,
                    operator=actor.operator, channel=actor.channel.value, request_id=None))
        count += 1
    out.put(count)
    db.dispose()


def _rate(url: str, keys_dir: str, writers: int, mode: str, seconds: float) -> tuple[float, int]:
    """Appends per second of ``writers`` processes running together (total / wall time, including
    the chaining of what they left waiting), and how many they left waiting."""
    ctx = mp.get_context("fork")
    start = ctx.Barrier(writers + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, keys_dir, n, mode, start, seconds, out))
             for n in range(writers)]
    for p in procs:
        p.start()
    start.wait()
    began = time.perf_counter()
    counts = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    db = Database(url)
    with db.session() as session:
        if mode == "plain":  # the reference rows must not end up in the chain
            session.execute(text("DELETE FROM audit_events WHERE seq IS NULL"))
            waiting = 0
        else:
            waiting = audit.chain_pending(session)
    elapsed = time.perf_counter() - began
    db.dispose()
    return sum(counts) / elapsed, waiting


def _spread(values: list[float]) -> str:
    return f"{len(values)} runs, {min(values):,.0f}-{max(values):,.0f}"


def main(quick: bool = False) -> list[dict]:
    runs = 1 if quick else 3
    load_before = os.getloadavg()[0]
    seconds = 1.0 if quick else 3.0
    _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DB_NAME}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            keys_dir = str(Path(tmp) / "keys")
            KeyStore.init(Path(keys_dir))
            rates: dict[str, dict[int, list[float]]] = {m: {w: [] for w in WRITERS} for m in MODES}
            left: dict[int, list[int]] = {w: [] for w in WRITERS}
            for _ in range(runs):
                for w in WRITERS:  # interleaved, so machine noise hits every variant alike
                    for mode in MODES:
                        rate, waiting = _rate(url, keys_dir, w, mode, seconds)
                        rates[mode][w].append(rate)
                        if mode == "chained":
                            left[w].append(waiting)
            ours, plain, blocking = rates["chained"], rates["plain"], rates["blocking"]

            keys = KeyStore(Path(keys_dir))
            platform = Platform(settings=Settings(data_dir=Path(tmp), database_url=url, keys_dir=Path(keys_dir)),
                                db=Database(url), keys=keys, vault=Vault(keys))
            with platform.db.session() as session:
                appended = session.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
                began = time.perf_counter()
                report = audit.verify_chain(platform.ctx(session, Actor.system("bench")))
                verify_seconds = time.perf_counter() - began
            platform.db.dispose()
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')

    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (nproc {os.cpu_count()})"
    reference = "same row INSERT + COMMIT without chaining, same writers, interleaved"
    rows = []
    for w in WRITERS:
        value, ref = statistics.median(ours[w]), statistics.median(plain[w])
        rows.append({
            "figure": f"Audit appends, {w} concurrent writer{'s' if w > 1 else ''} (PostgreSQL)",
            "value": round(value, 1),
            "unit": "appends/s",
            "reference": reference,
            "reference_value": round(ref, 1),
            "ratio": round(value / ref, 3) if ref else None,
            "goal": None,
            "met": None,
            "notes": f"one event per transaction (record_access + commit), {seconds:.0f} s per run; "
                     f"ours {_spread(ours[w])}, left for the next chaining {max(left[w])} at most; "
                     f"reference {_spread(plain[w])}; if commits waited for the chain lock: "
                     f"{statistics.median(blocking[w]):,.0f}/s ({_spread(blocking[w])}); {load}",
        })
    intact = report.intact and report.events == appended and report.unchained == 0
    rows.append({
        "figure": "Chain verified after all runs (audit verify)",
        "value": report.events,
        "unit": "events",
        "reference": None,
        "reference_value": None,
        "ratio": None,
        "goal": "intact, gap-free, every appended event chained",
        "met": intact,
        "notes": f"{report.summary()[:80]}...; {appended} rows in the table; verify walked "
                 f"{report.events / verify_seconds:,.0f} events/s",
    })
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv[1:]):
        print(row)
