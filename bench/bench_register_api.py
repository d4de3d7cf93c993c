"""Card registration through the API: ``POST /api/v1/cards`` against ``ehc serve`` on PostgreSQL.

Set-up: a freshly migrated scratch database ``ehc_bench_register_api``; ``ehc serve --workers 2`` (uvicorn)
as a subprocess on 127.0.0.1, rate limits off (``EHC_RATE_LIMIT_*=0``: the load comes from one
address, and the figure is the request path, not the limiter); a separate driver process (this file with ``--drive``) sends requests
with httpx on asyncio, at most ``CONCURRENCY`` in flight, each registration a distinct valid resident
(the same generator as the import benchmark), bounded both in count and in time.

Goal (issue 12): at least half the rate of ``/healthz``. Reference, in the same run against the same server: ``GET /healthz``, a bare endpoint that goes
through the same middleware and server but touches neither the database nor the crypto. Ratio =
registrations/s ÷ healthz requests/s. Figures are medians over ``ROUNDS`` rounds; the driver
shares the machine's cores with the server and PostgreSQL, so next to the rates each round reports
the CPU per request of the server's processes and of the PostgreSQL backends of the benchmark's
database (from /proc): what a request costs, which the load of a shared machine moves least.

Run alone: ``.venv/bin/python bench/bench_register_api.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_import import ADMIN_URL, OUT, ROOT, _admin, residents
from bench_signed import _cpu_seconds

DATABASE = "ehc_bench_register_api"
CONCURRENCY = 16
ROUNDS = 3


# -- the driver (a separate process) ----------------------------------------------------------------

async def _drive(base_url: str, mode: str, offset: int, count: int, max_seconds: float) -> dict:
    import httpx

    assert base_url.startswith("http://127.0.0.1:"), "the benchmark only talks to this machine"
    if mode == "register":
        bodies = [
            {"name": r[0], "document": {"type": r[1], "number": r[2]}, "sex": r[3], "birth_date": r[4],
             "phone": r[5], "address": r[6]}
            for r in residents(count, offset=offset)
        ]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    deadline = time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < count and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            if mode == "register":
                answer = await client.post("/api/v1/cards", json=bodies[index])
            else:
                answer = await client.get("/healthz")
            latencies.append(time.perf_counter() - started)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        seconds = time.perf_counter() - started
    ok = statuses.get(201 if mode == "register" else 200, 0)
    latencies.sort()
    return {
        "mode": mode, "requests": len(latencies), "ok": ok, "statuses": statuses, "seconds": seconds,
        "rate": ok / seconds if seconds else 0.0,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None,
    }


def _run_driver(base_url: str, mode: str, offset: int, count: int, max_seconds: float) -> dict:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--drive", base_url, mode, str(offset), str(count),
         str(max_seconds)],
        capture_output=True, text=True, timeout=max_seconds + 120, cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"driver failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- CPU per request --------------------------------------------------------------------------------

def _postgres_cpu_seconds(url: str) -> float:
    """User + system CPU of the PostgreSQL backends serving this benchmark's database (from /proc;
    the server is on this machine): the database's share of a request, which the server's own
    processes do not show. Backends of other databases (other people's work), PostgreSQL's own
    background processes (WAL writer, checkpointer, autovacuum) are not counted."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url.rsplit("/", 1)[0] + "/postgres", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            # Client backends only: an autovacuum worker on the database's fresh tables comes and goes
            # at its own times and would make a round's figure a matter of luck.
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid() "
                                     "AND backend_type = 'client backend'"), {"db": DATABASE}).scalars().all()
    finally:
        engine.dispose()
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _measured(server: subprocess.Popen, url: str, *args) -> dict:  # noqa: ANN002
    """One driver round, with the CPU the server's processes and the database's backends spent on it
    (milliseconds per request; the driver's own CPU is not counted)."""
    server_before, database_before = _cpu_seconds(server.pid), _postgres_cpu_seconds(url)
    result = _run_driver(*args)
    requests = max(result["requests"], 1)
    result["server_cpu_ms"] = 1000 * (_cpu_seconds(server.pid) - server_before) / requests
    result["database_cpu_ms"] = 1000 * (_postgres_cpu_seconds(url) - database_before) / requests
    return result


# -- the server -------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(url: str, keys_dir: Path) -> tuple[subprocess.Popen, str, object]:
    port = _free_port()
    # Rate limits off: the load comes from one address, and the figure is the request path itself.
    env = {**os.environ, "EHC_DATABASE_URL": url, "EHC_KEYS_DIR": str(keys_dir), "EHC_DATA_DIR": str(OUT),
           "EHC_RATE_LIMIT_APP": "0", "EHC_RATE_LIMIT_IDENTITY": "0", "EHC_RATE_LIMIT_ANONYMOUS": "0",
           # Two workers share their state through Redis (ehc serve refuses several workers without it).
           "EHC_REDIS_URL": os.environ.get("EHC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
           "EHC_REDIS_PREFIX": f"ehc-bench-register-{os.getpid()}:"}
    log = open(OUT / "bench_register_api.server.log", "w")  # noqa: SIM115 - closed by the caller
    server = subprocess.Popen(
        [sys.executable, "-m", "ehc.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    base_url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"ehc serve exited with {server.returncode}; see {log.name}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("ehc serve did not answer /healthz within 60 s")
        time.sleep(0.3)
    return server, base_url, log


def main(quick: bool = False) -> list[dict]:
    from ehc.crypto import KeyStore
    from ehc.migrate import upgrade

    count = 300 if quick else 2000
    max_seconds = 30.0 if quick else 120.0
    keys_dir = OUT / "keys"
    OUT.mkdir(parents=True, exist_ok=True)
    if not KeyStore(keys_dir).exists:
        KeyStore.init(keys_dir)
    _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DATABASE}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    upgrade(url)
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    server, base_url, log = _start_server(url, keys_dir)
    registers, bares = [], []
    try:
        _run_driver(base_url, "register", 10_000_000, 100, 30)  # warm-up: connections, caches, JIT-free paths
        _run_driver(base_url, "healthz", 0, 200, 30)
        for round_ in range(ROUNDS):
            registers.append(_measured(server, url, base_url, "register", round_ * count, count, max_seconds))
            bares.append(_measured(server, url, base_url, "healthz", 0, count, max_seconds))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    load_after = os.getloadavg()[0]
    failures = [r["statuses"] for r in registers if r["ok"] != r["requests"]]

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    rate, bare_rate = med(registers, "rate"), med(bares, "rate")
    p50, bare_p50 = med(registers, "p50_ms"), med(bares, "p50_ms")
    p99, bare_p99 = med(registers, "p99_ms"), med(bares, "p99_ms")
    server_cpu, bare_server_cpu = med(registers, "server_cpu_ms"), med(bares, "server_cpu_ms")
    database_cpu, bare_database_cpu = med(registers, "database_cpu_ms"), med(bares, "database_cpu_ms")
    cpu = (f"server CPU {server_cpu:.1f} ms a registration (healthz {bare_server_cpu:.2f} ms), PostgreSQL backends' "
           f"CPU {database_cpu:.1f} ms a registration (healthz {bare_database_cpu:.2f} ms), medians of the rounds, "
           f"from /proc")
    common = (f"median of {ROUNDS} rounds of {count} distinct residents (rates per round: "
              f"{', '.join(str(round(r['rate'])) for r in registers)}); {CONCURRENCY} concurrent connections "
              f"from one httpx/asyncio driver process (anonymous, as the public website); ehc serve --workers 2 on "
              f"PostgreSQL, rate limits off; all on the same cores"
              + f"; 1-min load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores"
              + (f"; NON-201 answers: {failures}" if failures else ""))
    return [
        {"figure": "POST /api/v1/cards, distinct residents (requests/s)", "value": rate, "unit": "req/s",
         "reference": "GET /healthz, same server and driver (req/s)", "reference_value": bare_rate,
         "ratio": rate / bare_rate, "goal": ">= 0.5x", "met": rate / bare_rate >= 0.5,
         "notes": common + "; " + cpu + "; ratio = value / reference"},
        {"figure": "POST /api/v1/cards, server CPU per registration", "value": server_cpu, "unit": "ms",
         "reference": "GET /healthz, server CPU per request (ms)", "reference_value": bare_server_cpu,
         "ratio": server_cpu / bare_server_cpu if bare_server_cpu else None, "goal": None, "met": None,
         "notes": f"ehc serve's processes (both workers), user + system, from /proc; PostgreSQL's backends for the "
                  f"benchmark's database another {database_cpu:.1f} ms a registration"},
        {"figure": "POST /api/v1/cards latency p50", "value": p50, "unit": "ms",
         "reference": "GET /healthz p50 (ms)", "reference_value": bare_p50, "ratio": p50 / bare_p50,
         "goal": None, "met": None, "notes": f"at {CONCURRENCY} requests in flight"},
        {"figure": "POST /api/v1/cards latency p99", "value": p99, "unit": "ms",
         "reference": "GET /healthz p99 (ms)", "reference_value": bare_p99, "ratio": p99 / bare_p99,
         "goal": None, "met": None, "notes": f"at {CONCURRENCY} requests in flight"},
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        _, _, base, mode, offset, count, seconds = sys.argv
        print(json.dumps(asyncio.run(_drive(base, mode, int(offset), int(count), float(seconds)))))
    else:
        for row in main(quick="--quick" in sys.argv):
            print(row)
