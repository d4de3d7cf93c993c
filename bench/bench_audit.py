"""Audit trail appends per second on PostgreSQL, with 1, 4 and 8 concurrent writers, chain verified;
and what the chain costs in CPU, at the commit or later in batches.

Headline figures: audit events appended *and chained* per second when 1, 4 and 8 writer processes
each run "request-shaped" transactions back to back: open a session, ``audit.service.record_access``
once, commit. The commit leaves the event unchained (``audit.service``'s rule): a
sweeper process chains what waits every 0.2 s, as the sweeper of each ``ehc serve`` worker does,
and what a run leaves waiting is chained right after it, that time counted in. The reference,
measured in the same run and interleaved with ours, is the same processes inserting the same row
(one Core INSERT built once and executed with parameters, as ``record_access``'s own since 2026-12-04
21:55; before, a statement built for each row) and committing without chaining it (``seq`` left empty). Also measured, for the design note in
docs/security.md: the rule before (every commit *tries* the chain lock and chains when it is free,
``chain_pending(wait=False)`` before COMMIT) and the alternative where every commit *waits* for it
(``chain_pending(wait=True)``).

Beside every rate, the CPU an append costs: the writers' own (``time.process_time``) and their
PostgreSQL backends' (``/proc/<pid>/stat`` of each connection's backend; the server must run on this
machine, else it is left out), and for ours the sweeper's and its backend's, spread over the events
it chained. The chaining rate is the events a chaining batch links per second of its transaction
(lock, tail and waiting events read, update, commit): how fast the deferred work is done, against
the rate it arrives.

SQLite (one process, one write lock): the same comparison in one process, 1 writer: plain insert,
ours (committed unchained, a thread chains every 0.2 s, its CPU counted: it is the same process) and
the rule before (chained at commit).

At the end the whole PostgreSQL chain is verified with ``audit.service.verify_chain``; the last row
says whether it held (gap-free, every link recomputed, nothing left unchained) and how fast
verification walks it.

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
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.orm import configure_mappers

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
# ours: the rule (PostgreSQL: commit unchained, a sweeper chains); at_commit: the rule before (try
# the lock at commit); blocking: wait for the lock at commit; plain: the reference.
MODES = ("plain", "ours", "at_commit", "blocking")
SWEEP_INTERVAL = 0.2
TICK = os.sysconf("SC_CLK_TCK")


def _admin(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _actor(n: int) -> Actor:
    return Actor(kind="staff", channel=Channel.WINDOW, id=f"bench-staff-{n}", institution_id=f"bench-inst-{n % 3}",
                 operator=f"bench-clerk-{n}", roles=frozenset({"window_clerk"}))


def _platform(url: str, keys_dir: str) -> Platform:
    settings = Settings(data_dir=Path(keys_dir).parent, database_url=url, keys_dir=Path(keys_dir))
    keys = KeyStore(settings.keys_dir)
    return Platform(settings=settings, db=Database(url), keys=keys, vault=Vault(keys))


def _backend_pid(db: Database) -> int | None:
    if db.engine.dialect.name != "postgresql":
        return None
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _backend_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) of a PostgreSQL backend, from /proc; None when not readable here."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


_PLAIN_INSERT = insert(AuditEvent.__table__).returning(AuditEvent.__table__.c.id)


def _append(platform: Platform, actor: Actor, person: str, mode: str) -> None:
    db = platform.db
    with db.session() as session:
        if mode == "plain":  # the reference: the same row, inserted and committed, left out of the chain
            # by a statement built once and executed with parameters, as record_access's own is (a
            # statement built for each row costs its client more CPU than the insert it makes).
            session.connection().execute(_PLAIN_INSERT, {
                "at": utcnow(), "action": "read", "purpose": "card.view", "person_id": person,
                "actor_kind": actor.kind, "actor_id": actor.id, "actor_role": "window_clerk",
                "institution_id": actor.institution_id, "operator": actor.operator,
                "channel": actor.channel.value, "request_id": None}).scalar_one()
            return
        audit.record_access(platform.ctx(session, actor), person, "read", "card.view")
        if mode == "at_commit":  # the rule before: try the lock, chain if free, commit
            session.flush()
            audit.chain_pending(session, wait=False)
        elif mode == "blocking":  # the alternative: queue for the lock, chain, commit
            session.flush()
            audit.chain_pending(session, wait=True)


def _writer(url: str, keys_dir: str, n: int, mode: str, start, seconds: float, out) -> None:  # noqa: ANN001
    """One writer process: transactions back to back for ``seconds``; reports how many it committed
    and the CPU it and its backend spent."""
    platform = _platform(url, keys_dir)
    actor = _actor(n)
    # Warmed up as a server's worker is: the connection open (its backend known), the ORM's mappers
    # configured and this mode's statements compiled, not inside the timed loop (configuring every
    # mapper of the platform costs a fresh process a good part of a second of CPU).
    _append(platform, actor, f"{n:08X}{'F' * 24}", mode)
    pid = _backend_pid(platform.db)
    count = 0
    start.wait()
    cpu, backend = time.process_time(), _backend_cpu(pid)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _append(platform, actor, f"{n:08X}{count:024X}", mode)
        count += 1
    after = _backend_cpu(pid)
    out.put((count, time.process_time() - cpu, None if backend is None or after is None else after - backend))
    platform.db.dispose()


class _Chainer:
    """Chains what waits, every ``interval`` seconds, as ``audit.Sweeper`` does, counting the events
    it chained, the time its batches took and the CPU it (and its backend) spent."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.events = self.batches = 0
        self.busy = 0.0

    def once(self, wait: bool = False) -> int:
        began = time.perf_counter()
        with self.db.session() as session:
            chained = audit.chain_pending(session, wait=wait) if audit.repository.has_unchained(session) else 0
        if chained:
            self.events += chained
            self.batches += 1
            self.busy += time.perf_counter() - began
        return chained


def _sweeper(url: str, keys_dir: str, stop, out) -> None:  # noqa: ANN001
    db = Database(url)
    chainer = _Chainer(db)
    pid = _backend_pid(db)
    cpu, backend = time.process_time(), _backend_cpu(pid)
    while not stop.wait(SWEEP_INTERVAL):
        chainer.once()
    chainer.once(wait=True)  # what the writers left, as a reader or the next round would
    after = _backend_cpu(pid)
    out.put((chainer.events, chainer.batches, chainer.busy, time.process_time() - cpu,
             None if backend is None or after is None else after - backend))
    db.dispose()


def _run(url: str, keys_dir: str, writers: int, mode: str, seconds: float) -> dict:
    """``writers`` processes running together: appends per second (total / wall time, including the
    chaining of what they left waiting), CPU an append (writers, their backends, the sweeper's share)."""
    ctx = mp.get_context("fork")
    start = ctx.Barrier(writers + 1)
    out, swept, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_writer, args=(url, keys_dir, n, mode, start, seconds, out))
             for n in range(writers)]
    sweeper = ctx.Process(target=_sweeper, args=(url, keys_dir, stop, swept)) if mode == "ours" else None
    for p in procs + ([sweeper] if sweeper else []):
        p.start()
    start.wait()
    began = time.perf_counter()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    counting = Database(url)
    with counting.session() as session:
        left = audit.repository.count_unchained(session)
    counting.dispose()
    sweep = None
    if sweeper is not None:
        stop.set()
        sweep = swept.get(timeout=120)
        sweeper.join()
    elif mode != "plain":
        db = Database(url)
        _Chainer(db).once(wait=True)
        db.dispose()
    if mode == "plain":  # the reference rows must not end up in the chain
        db = Database(url)
        with db.session() as session:
            session.execute(text("DELETE FROM audit_events WHERE seq IS NULL"))
        db.dispose()
    elapsed = time.perf_counter() - began
    appends = sum(r[0] for r in results)
    client = sum(r[1] for r in results)
    backends = [r[2] for r in results]
    backend = None if None in backends else sum(backends)
    row = {"rate": appends / elapsed, "appends": appends, "client_us": 1e6 * client / appends,
           "backend_us": None if backend is None else 1e6 * backend / appends, "left": left}
    if sweep is not None:
        events, batches, busy, cpu, sweep_backend = sweep
        row.update(chained=events, batches=batches, chain_rate=events / busy if busy else None,
                   sweep_us=1e6 * cpu / appends,
                   sweep_backend_us=None if sweep_backend is None else 1e6 * sweep_backend / appends,
                   arrival=appends / seconds)
    return row


def _sqlite(keys_dir: str, seconds: float, runs: int) -> dict[str, list[dict]]:
    """One process, 1 writer: plain, ours (committed unchained, a thread chains), chained at commit (before)."""
    results: dict[str, list[dict]] = {m: [] for m in ("plain", "ours", "at_commit")}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'audit.sqlite3'}"
        upgrade(url)
        platform = _platform(url, keys_dir)
        actor = _actor(0)
        for _ in range(runs):
            for mode in results:
                chainer, stop = _Chainer(platform.db), threading.Event()
                thread = None
                if mode == "ours":
                    def sweep() -> None:
                        while not stop.wait(SWEEP_INTERVAL):
                            chainer.once()
                    thread = threading.Thread(target=sweep, daemon=True)
                    thread.start()
                count, began, cpu = 0, time.perf_counter(), time.process_time()
                deadline = began + seconds
                while time.perf_counter() < deadline:
                    _append(platform, actor, f"{count:032X}", mode)
                    count += 1
                if thread is not None:
                    stop.set()
                    thread.join()
                    chainer.once(wait=True)
                elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
                if mode == "plain":
                    with platform.db.session() as session:
                        session.execute(text("DELETE FROM audit_events WHERE seq IS NULL"))
                results[mode].append({"rate": count / elapsed, "client_us": 1e6 * cpu / count,
                                      "chain_rate": chainer.events / chainer.busy if chainer.busy else None})
        platform.db.dispose()
    return results


def _spread(values: list[float]) -> str:
    return f"{len(values)} runs, {min(values):,.0f}-{max(values):,.0f}"


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} µs"


def main(quick: bool = False) -> list[dict]:
    configure_mappers()  # once, before the writers fork (they share it)
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
            results: dict[str, dict[int, list[dict]]] = {m: {w: [] for w in WRITERS} for m in MODES}
            for _ in range(runs):
                for w in WRITERS:  # interleaved, so machine noise hits every variant alike
                    for mode in MODES:
                        results[mode][w].append(_run(url, keys_dir, w, mode, seconds))
            lite = _sqlite(keys_dir, seconds, runs)

            platform = _platform(url, keys_dir)
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
        ours, plain = results["ours"][w], results["plain"][w]
        at_commit, blocking = results["at_commit"][w], results["blocking"][w]
        value, ref = _median(ours, "rate"), _median(plain, "rate")
        ratio = value / ref if ref else None
        own = [r["client_us"] + r["sweep_us"] + (r["backend_us"] or 0) + (r["sweep_backend_us"] or 0) for r in ours]
        base = [r["client_us"] + (r["backend_us"] or 0) for r in plain]
        before = [r["client_us"] + (r["backend_us"] or 0) for r in at_commit]
        rows.append({
            "figure": f"Audit appends, {w} concurrent writer{'s' if w > 1 else ''} (PostgreSQL)",
            "value": round(value, 1),
            "unit": "appends/s",
            "reference": reference,
            "reference_value": round(ref, 1),
            "ratio": round(ratio, 3) if ratio else None,
            "goal": ">= 0.8x",
            "met": bool(ratio and ratio >= 0.8),
            "notes": f"one event per transaction (record_access + commit, the event committed unchained; a "
                     f"sweeper process chains every {SWEEP_INTERVAL} s), {seconds:.0f} s per run; ours "
                     f"{_spread([r['rate'] for r in ours])}, reference {_spread([r['rate'] for r in plain])}. "
                     f"CPU an append (client + its PostgreSQL backend, medians): ours {_us(statistics.median(own))} "
                     f"(writers {_us(_median(ours, 'client_us'))} + backends {_us(_median(ours, 'backend_us'))} + "
                     f"chaining {_us(_median(ours, 'sweep_us'))} + its backend {_us(_median(ours, 'sweep_backend_us'))}), "
                     f"plain {_us(statistics.median(base))} (writers {_us(_median(plain, 'client_us'))} + backends "
                     f"{_us(_median(plain, 'backend_us'))}); a chaining batch linked "
                     f"{_median(ours, 'chain_rate') or 0:,.0f} events/s of its transaction against "
                     f"{_median(ours, 'arrival'):,.0f}/s arriving, {max(r['batches'] for r in ours)} batches at most, "
                     f"{max(r['left'] for r in ours)} left waiting at the end at most (chained, time counted). "
                     f"The rule before (try the lock at commit): {_median(at_commit, 'rate'):,.0f}/s "
                     f"({_spread([r['rate'] for r in at_commit])}), {_median(at_commit, 'rate') / ref:.2f}x, CPU "
                     f"{_us(statistics.median(before))} (writers {_us(_median(at_commit, 'client_us'))} + backends "
                     f"{_us(_median(at_commit, 'backend_us'))}); waiting for the lock at commit: "
                     f"{_median(blocking, 'rate'):,.0f}/s ({_spread([r['rate'] for r in blocking])}); {load}",
        })
    lite_ref = _median(lite["plain"], "rate")
    for mode, label in (("ours", "committed unchained, chained in batches (the rule)"),
                        ("at_commit", "chained at commit (the rule before)")):
        value = _median(lite[mode], "rate")
        rows.append({
            "figure": f"Audit appends, 1 writer (SQLite), {label}",
            "value": round(value, 1),
            "unit": "appends/s",
            "reference": "same row INSERT + COMMIT without chaining, same process, interleaved",
            "reference_value": round(lite_ref, 1),
            "ratio": round(value / lite_ref, 3) if lite_ref else None,
            "goal": None,
            "met": None,
            "notes": f"one process (SQLite's deployment); CPU an append {_us(_median(lite[mode], 'client_us'))} "
                     f"against {_us(_median(lite['plain'], 'client_us'))} plain"
                     + (f"; a chaining batch linked {_median(lite[mode], 'chain_rate') or 0:,.0f} events/s"
                        if mode == "ours" else "")
                     + f"; ours {_spread([r['rate'] for r in lite[mode]])}, reference "
                       f"{_spread([r['rate'] for r in lite['plain']])}; {load}",
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
