"""Appointments on PostgreSQL: bookings per second under contention, and the free-period search over a
province-sized schedule (issue 14).

Bookings. A scratch database ``ehc_bench_appointments``; residents imported with the card importer
(one card a booking, so no person rule refuses anyone); one hospital with a department and, per round,
10 hot periods of 5 window places each and 200 spread periods of 50. ``ehc serve --workers 2``
(uvicorn) as a subprocess, rate limits off; a separate driver process (this file with ``--drive``)
keeps ``CLIENTS`` requests in flight with httpx on asyncio: ``POST /api/v1/appointments/bookings``
as a window clerk (bearer token), half of them on a hot period, half spread, each a distinct card.
Every answer is a 201 or a 409 ``period_full``; after each round the hot periods hold exactly their
capacity (checked). Reference in the same run: ``GET /healthz`` at the same concurrency. Ratio =
booking answers/s ÷ healthz answers/s.

Search. ``INSTITUTIONS`` × 30 departments × 60 days of sessions (4 periods each) loaded with
``COPY``; then ``GET /api/v1/appointments/sessions`` in-process (TestClient, anonymous), by
department code over a week across the province (the first 100 sessions by time, with each one's
free places) and by institution + department for a day, at random; p50/p95 over ``QUERIES`` queries.

Run alone: ``.venv/bin/python bench/bench_appointments.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from ehc.db import IN_FLIGHT  # the requests a worker works on at once (the notes say it)

from bench_import import OUT, ROOT, each_on_a_scratch_database, generate
from bench_register_api import _free_port

DATABASE = "ehc_bench_appointments"
CLIENTS = 200
HOT, HOT_PLACES, SPREAD, SPREAD_PLACES = 10, 5, 200, 50
ROUNDS = 3
DEPARTMENTS = ["0300", "0301", "0302", "0303", "0304", "0305", "0306", "0307", "0308", "0309", "0400", "0401",
               "0402", "0403", "0404", "0405", "0406", "0407", "0500", "0501", "0502", "0503", "0504", "0700",
               "0701", "0702", "1000", "1100", "1200", "1300"]
QUERIES = 400


# -- the driver (a separate process) ----------------------------------------------------------------

async def _drive(base_url: str, mode: str, token: str, plan_file: str, max_seconds: float) -> dict:
    import httpx

    assert base_url.startswith("http://127.0.0.1:"), "the benchmark only talks to this machine"
    plan = json.loads(Path(plan_file).read_text()) if mode == "book" else [None] * int(plan_file)
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    next_index = 0
    deadline = time.perf_counter() + max_seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < len(plan) and time.perf_counter() < deadline:
            item = plan[next_index]
            next_index += 1
            started = time.perf_counter()
            for attempt in range(5):  # a keep-alive connection the busy server closed: send again (same key)
                try:
                    if mode == "book":
                        answer = await client.post("/api/v1/appointments/bookings",
                                                   headers={**headers, "Idempotency-Key": f"bench-{item[1]}"},
                                                   json={"period_id": item[0], "ehc_id": item[1]})
                    else:
                        answer = await client.get("/healthz")
                    break
                except httpx.TransportError:
                    statuses["resent"] = statuses.get("resent", 0) + 1
                    if attempt == 4:
                        raise
            key = str(answer.status_code)
            if mode == "book" and answer.status_code != 201:
                key += ":" + answer.json().get("code", "")
            latencies.append(time.perf_counter() - started)
            statuses[key] = statuses.get(key, 0) + 1

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CLIENTS)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "statuses": statuses, "seconds": seconds,
            "rate": len(latencies) / seconds if seconds else 0.0,
            "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None}


def _run_driver(base_url: str, mode: str, token: str, plan: str, max_seconds: float) -> dict:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--drive", base_url, mode, token, plan,
                           str(max_seconds)], capture_output=True, text=True, timeout=max_seconds + 120, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"driver failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start_server(url: str, keys_dir: Path) -> tuple[subprocess.Popen, str, object]:
    """``ehc serve --workers 2`` on ``url``, rate limits off (the load comes from one address)."""
    import httpx

    port = _free_port()
    env = {**os.environ, "EHC_DATABASE_URL": url, "EHC_KEYS_DIR": str(keys_dir), "EHC_DATA_DIR": str(OUT),
           "EHC_RATE_LIMIT_APP": "0", "EHC_RATE_LIMIT_IDENTITY": "0", "EHC_RATE_LIMIT_ANONYMOUS": "0"}
    log = open(OUT / "bench_appointments.server.log", "w")  # noqa: SIM115 - closed by the caller
    # ehc's app as ``ehc serve --workers 2`` runs it: each worker works on db.IN_FLIGHT requests at once,
    # the other requests of the 200 queue in its event loop (docs/appointments.md, "Serving 200 clients").
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_appointments:server_app", "--factory",
                               "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "2", "--log-level", "warning"],
                              env={**env, "PYTHONPATH": str(ROOT / "src")}, stdout=log, stderr=subprocess.STDOUT,
                              cwd=ROOT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"ehc serve exited with {server.returncode}; see {log.name}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=20).status_code == 200:
                return server, base_url, log
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("ehc serve did not answer /healthz within 180 s")
        time.sleep(0.5)


def server_app():  # noqa: ANN201
    """``ehc.app.app_factory`` (uvicorn's factory in each worker process)."""
    from ehc.app import app_factory  # in the worker process, after uvicorn forked it

    return app_factory()


# -- set-up -----------------------------------------------------------------------------------------

def _platform(url: str, keys_dir: Path):  # noqa: ANN202
    from ehc.config import Settings
    from ehc.platform import Platform

    return Platform.from_settings(Settings(database_url=url, keys_dir=keys_dir, data_dir=OUT))


def _hospital(platform) -> tuple[str, str]:  # noqa: ANN001
    """The hospital of the booking benchmark, its department 0300 and a window clerk's token."""
    from stdnum.cn import uscc as stdnum_uscc

    from ehc.accounts import service as accounts
    from ehc.institutions import service as institutions
    from ehc.kit.context import Actor

    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        body = "12510104MB0000001"
        hospital = institutions.create_institution(session, uscc=body + stdnum_uscc.calc_check_digit(body),
                                                   name="Bench hospital",
                                                   kind="hospital", region_code="510104", level="3A")
        institutions.add_department(ctx, hospital, code="0300")
        accounts.create_staff(ctx, username="bench.clerk", password="correct horse battery", role="window_clerk",
                              institution_id=hospital.id)
        token = accounts.sign_in_staff(ctx, "bench.clerk", "correct horse battery")[0]
    return hospital.id, token


def _round_periods(platform, institution_id: str, round_: int) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """Fresh hot and spread periods for one round (sessions on days of their own)."""
    from ehc.appointments import service as appointments
    from ehc.kit.clock import china_today
    from ehc.kit.context import Actor
    from ehc.kit.codes import Channel

    actor = Actor(kind="staff", channel=Channel.WINDOW, id="bench", institution_id=institution_id,
                  roles=frozenset({"institution_admin"}))
    hot, spread = [], []
    with platform.db.session() as session:
        ctx = platform.ctx(session, actor)
        day = china_today() + timedelta(days=1 + round_ * 3)
        made = appointments.create_session(ctx, department_code="0300", day=day, doctor="hot", shape=appointments.Shape(
            start="08:00", end="10:30", period_minutes=15, quota_window=HOT_PLACES))
        hot = [p.id for p, _ in appointments.periods(ctx, made)][:HOT]
        for n in range(SPREAD // 20):  # 10 sessions of 20 periods, over two days
            made = appointments.create_session(
                ctx, department_code="0300", day=day + timedelta(days=1 + n % 2), doctor=f"spread-{n}",
                shape=appointments.Shape(start="08:00", end="13:00", period_minutes=15, quota_window=SPREAD_PLACES))
            spread += [p.id for p, _ in appointments.periods(ctx, made)]
    return hot, spread


def _live_in(platform, period_ids: list[int]) -> int:  # noqa: ANN001
    from sqlalchemy import func, select

    from ehc.appointments.models import Booking

    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(Booking).where(
            Booking.period_id.in_(period_ids), Booking.status.in_(("held", "booked", "arrived"))))


def _bookings(url: str, keys_dir: Path, quick: bool) -> list[dict]:
    from sqlalchemy import text

    from ehc.cards.importer import import_csv

    per_round = 400 if quick else 800
    platform = _platform(url, keys_dir)
    path = generate(per_round * ROUNDS, OUT / f"appointments_residents_{per_round * ROUNDS}.csv", seed=1414)
    import_csv(platform, path, operator="bench")
    with platform.db.engine.connect() as conn:
        cards = list(conn.execute(text("SELECT ehc_id FROM cards ORDER BY ehc_id")).scalars())
    institution_id, token = _hospital(platform)
    load_before = os.getloadavg()[0]
    server, base_url, log = _start_server(url, keys_dir)
    rounds, bares, exact = [], [], []
    rng = random.Random(14)
    try:
        _run_driver(base_url, "healthz", token, "400", 30)  # warm-up
        for round_ in range(ROUNDS):
            hot, spread = _round_periods(platform, institution_id, round_)
            mine = cards[round_ * per_round:(round_ + 1) * per_round]
            plan = [(rng.choice(hot) if i % 2 == 0 else rng.choice(spread), ehc_id) for i, ehc_id in enumerate(mine)]
            plan_file = OUT / f"appointments_plan_{round_}.json"
            plan_file.write_text(json.dumps(plan))
            rounds.append(_run_driver(base_url, "book", token, str(plan_file), 300))
            bares.append(_run_driver(base_url, "healthz", token, str(per_round), 120))
            exact.append(_live_in(platform, hot) == HOT * HOT_PLACES)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        platform.db.dispose()
    load_after = os.getloadavg()[0]
    rate, bare = statistics.median(r["rate"] for r in rounds), statistics.median(r["rate"] for r in bares)
    p50, p99 = statistics.median(r["p50_ms"] for r in rounds), statistics.median(r["p99_ms"] for r in rounds)
    statuses: dict[str, int] = {}
    for r in rounds:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    notes = (f"{ROUNDS} rounds of {per_round} bookings, {CLIENTS} in flight from one httpx/asyncio driver process "
             f"(window clerk's bearer token), half on {HOT} hot periods of {HOT_PLACES} places, half spread over "
             f"{SPREAD} periods of {SPREAD_PLACES}; answers {statuses}; hot periods exactly full after every round: "
             f"{all(exact)}; rounds {', '.join(str(round(r['rate'])) for r in rounds)}/s; p50 {p50:.0f} ms, "
             f"p99 {p99:.0f} ms; ehc's app, uvicorn --workers 2, at most {IN_FLIGHT} requests a worker in progress "
             f"(the rest queued at the gate), on PostgreSQL, rate limits off, all on the same cores; "
             f"1-min load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores")
    return [{"figure": "Bookings under contention, POST /api/v1/appointments/bookings (answers/s)", "value": rate,
             "unit": "req/s", "reference": "GET /healthz, same server, driver and concurrency (req/s)",
             "reference_value": bare, "ratio": rate / bare, "goal": None, "met": None, "notes": notes}]


# -- the search over a province ---------------------------------------------------------------------

def _load_schedule(url: str, institutions: int, days: int) -> tuple[int, float]:
    """``institutions`` × 30 departments × ``days`` days of sessions, 4 periods each, by COPY."""
    import psycopg

    from ehc.kit.clock import CHINA

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    first = date.today() + timedelta(days=1)
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY institutions (id, uscc, name, kind, region_code, level, created_at) FROM STDIN") as copy:
            for i in range(institutions):
                copy.write_row((f"i{i:05d}", f"12510000B{i:08d}X", f"医院{i}", "hospital", "510104", "3A",
                                datetime.now(CHINA)))
        with cur.copy("COPY departments (id, institution_id, code, name, created_at) FROM STDIN") as copy:
            for i in range(institutions):
                for code in DEPARTMENTS:
                    copy.write_row((f"d{i:05d}{code}", f"i{i:05d}", code, code, datetime.now(CHINA)))
        sessions = 0
        with cur.copy("COPY appt_sessions (id, institution_id, department_id, department_code, doctor, day, "
                      "starts_at, ends_at, category, fee_fen, period_minutes, referral_release_at, status, "
                      "created_at) FROM STDIN") as copy:
            for d in range(days):
                day = first + timedelta(days=d)
                start = datetime(day.year, day.month, day.day, 8, tzinfo=CHINA)
                for i in range(institutions):
                    for code in DEPARTMENTS:
                        sid = f"s{i:05d}{code}{d:03d}"
                        copy.write_row((sid, f"i{i:05d}", f"d{i:05d}{code}", code, "", day, start,
                                        start + timedelta(hours=1), "general", 1000, 15, start - timedelta(hours=24),
                                        "open", start))
                        sessions += 1
        with cur.copy("COPY appt_periods (session_id, starts_at, ends_at, quota_window, quota_kiosk, quota_online, "
                      "quota_referral, used_window, used_kiosk, used_online, used_referral) FROM STDIN") as copy:
            for d in range(days):
                day = first + timedelta(days=d)
                start = datetime(day.year, day.month, day.day, 8, tzinfo=CHINA)
                for i in range(institutions):
                    for code in DEPARTMENTS:
                        for p in range(4):
                            at = start + timedelta(minutes=15 * p)
                            copy.write_row((f"s{i:05d}{code}{d:03d}", at, at + timedelta(minutes=15), 2, 1, 4, 1,
                                            0, 0, (i + d + p) % 5, 0))
        conn.commit()
        cur.execute("ANALYZE")
    return sessions, time.perf_counter() - started


def _search(url: str, keys_dir: Path, quick: bool) -> list[dict]:
    from fastapi.testclient import TestClient

    from ehc.app import create_app
    from ehc.kit.ratelimit import RateLimiter

    institutions = 50 if quick else 500
    days = 60
    sessions, load_seconds = _load_schedule(url, institutions, days)
    platform = _platform(url, keys_dir)
    for name in platform.limiters:
        platform.limiters[name] = RateLimiter(0)
    rng = random.Random(60)
    first = date.today() + timedelta(days=1)
    timings: dict[str, list[float]] = {"province": [], "institution": []}
    with TestClient(create_app(platform)) as client:
        for n in range(QUERIES + 20):
            code = rng.choice(DEPARTMENTS)
            day = first + timedelta(days=rng.randrange(days - 7))
            if n % 2 == 0:
                kind, url_ = "province", (f"/api/v1/appointments/sessions?department_code={code}&date_from={day}"
                                          f"&date_to={day + timedelta(days=6)}&limit=100")
            else:
                kind, url_ = "institution", (f"/api/v1/appointments/sessions?institution_id=i{rng.randrange(institutions):05d}"
                                             f"&department_code={code}&date_from={day}&date_to={day}")
            started = time.perf_counter()
            answer = client.get(url_)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200 and answer.json(), answer.text[:300]
            if n >= 20:  # the first ones warm the caches
                timings[kind].append(elapsed * 1000)
    platform.db.dispose()

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(len(values) * q))]

    common = (f"{institutions} institutions x 30 departments x {days} days = {sessions:,} sessions, "
              f"{sessions * 4:,} periods (loaded by COPY in {load_seconds:.0f} s); in-process TestClient, anonymous, "
              f"PostgreSQL; {QUERIES // 2} queries of each kind at random, after 20 warm-up queries")
    rows = []
    for kind, what in (("province", "by department over a week, the whole province (first 100 sessions, with "
                                    "their free places)"),
                       ("institution", "by institution + department, one day")):
        values = timings[kind]
        rows.append({"figure": f"Free-period search p95, {what}", "value": pct(values, 0.95), "unit": "ms",
                     "reference": "p50, same queries", "reference_value": statistics.median(values),
                     "ratio": pct(values, 0.95) / statistics.median(values), "goal": None, "met": None,
                     "notes": common + f"; p99 {pct(values, 0.99):.1f} ms"})
    return rows


def main(quick: bool = False) -> list[dict]:
    return each_on_a_scratch_database(DATABASE, (_bookings, _search), quick)

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        _, _, base, mode, token, plan, seconds = sys.argv
        print(json.dumps(asyncio.run(_drive(base, mode, token, plan, float(seconds)))))
    else:
        for row in main(quick="--quick" in sys.argv):
            print(row)
