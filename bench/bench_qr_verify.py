"""Online verify-and-record: ``POST /api/v1/qr/verify`` on PostgreSQL, throughput and latency.

The platform runs as a real server (``uvicorn --factory ehc.app:app_factory``, one worker, as
``ehc serve`` runs it; ``bench_signed.Server``) on a scratch PostgreSQL database. Before each round,
this process draws fresh dynamic codes for a few hundred cards (each code is single use and lives
120 s) and prepares the requests; a separate load process then fires them over keep-alive
connections (a closed loop: each connection sends its next request when the answer is in) and
times every request from its first byte sent to its last byte read. Every answer must be 200.

What one verification costs the server: decode the code, SM2-verify it, open the card reference,
read the card with its holder and their sealed identifiers (one SELECT), then one statement that
claims the (key id, nonce) pair, records the card use and the audit event (a CTE: nothing is written
when the code was used already), open the holder's sealed name, sex, birth date and document (SM4),
commit; the audit event is chained in the next batch (the server's sweeper).

Arms (interleaved round by round, so machine noise hits each alike; medians over rounds):

- signed: the hospital system's call, signed with its SM2 key (the server also verifies that
  signature and claims the request nonce), as a HIS calls it;
- bearer: a window clerk's staff token, the same verification without the request signature;
- reference: ``GET /api/v1/apps/ping``, anonymous, the server's empty endpoint;
- signed with 2 and 4 workers: the signed arm against servers of two and four worker processes
  (each with its own empty-endpoint reference), started beside the first and idle while another is
  measured.

Profile (``bench/profile_verify.py``; docs/benchmarks.md, issue 12, has the signed call's before and
after): a signed verification with the nonce in Redis was 11 SQL statements (app and key, card,
claim, person, audit intake, identifiers, institution, card use, and at commit the chain's lock,
tail and update) and is 3 (app and key; card, holder and identifiers; claim + use + audit event).
On a quiet machine (2026-11-26) the 11 statements took 8.1 ms of wall time, the commit with its
fsync ~2.2 ms of it; the HTTP layer, authentication and the answer add ~5 ms. The empty endpoint
itself serves only ~260-740 requests/s on this machine, so the 1,000/s issue 4 asked for is beyond
one Python worker; more workers and hosts are how it scales (the path keeps no state in the process).

Goal (issue 12): at least 0.5x the same server's empty endpoint in the same run, p99 under 50 ms at
8 in flight, on 2 cores, load from a separate process (issue 4 asked for 1,000/s). The servers run
as several workers do, with Redis for the shared state when it answers on 127.0.0.1:6379; the
signed arm is measured against servers of 1, 2 and 4 workers (the scaling rows), each with its own
empty-endpoint reference, and every arm reports the server's CPU per request (/proc). Run alone: ``.venv/bin/python bench/bench_qr_verify.py [--quick]``; or through
``bench/run.py qr_verify``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_signed import (
    Server,
    _cpu_seconds,
    _http,
    _pg_available,
    _scratch_pg,
    prepare,
    redis_available,
    redis_fsync,
    signed_requests,
)

GOAL_RATIO = 0.5  # issue 12: at least half the same server's empty endpoint, in the same run
GOAL_P99_MS = 50.0
CONNECTIONS = 8
CARDS = 200
PATH = "/api/v1/qr/verify"


# -- the load generator, with per-request latency (runs in its own process) --------------------------

async def _connection(port: int, requests: list[bytes], start: int, step: int, stats: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(start, len(requests), step):
            sent = time.perf_counter()
            writer.write(requests[i])
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                           if line.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            stats["latencies"].append(time.perf_counter() - sent)
            if head.split(b" ", 2)[1] != b"200":
                stats["bad"] += 1
                stats.setdefault("first_bad", (head + body).decode("utf-8", "replace")[:600])
    finally:
        writer.close()


async def _load(port: int, requests: list[bytes], connections: int) -> dict:
    stats: dict = {"latencies": [], "bad": 0}
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, requests, c, connections, stats) for c in range(connections)))
    stats["seconds"] = time.perf_counter() - started
    return stats


def _load_main() -> None:
    spec = json.loads(sys.stdin.read())
    stats = asyncio.run(_load(spec["port"], [bytes.fromhex(r) for r in spec["requests"]], spec["connections"]))
    print(json.dumps(stats))


def run_load(port: int, requests: list[bytes]) -> dict:
    """One bounded round from a separate process: requests/s, p50 and p99 in ms."""
    spec = json.dumps({"port": port, "connections": CONNECTIONS, "requests": [r.hex() for r in requests]})
    done = subprocess.run([sys.executable, __file__, "--load"], input=spec, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the load process failed: {done.stderr[-1500:]}")
    stats = json.loads(done.stdout)
    if stats["bad"]:
        raise RuntimeError(f"{stats['bad']} of {len(requests)} answers were not 200, e.g. {stats.get('first_bad')}")
    latencies = sorted(stats["latencies"])
    return {"rate": len(latencies) / stats["seconds"], "p50": 1000 * _quantile(latencies, 0.50),
            "p99": 1000 * _quantile(latencies, 0.99)}


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the world: cards, and codes drawn just before use ------------------------------------------------

def _document(serial: int) -> str:
    """A valid resident ID number (GB 11643: ISO 7064 MOD 11-2 check character)."""
    body = f"51010419800101{serial:03d}"
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


def _platform(database_url: str, keys_dir: Path, data_dir: Path):
    from ehc.config import Settings
    from ehc.platform import Platform

    return Platform.from_settings(Settings(data_dir=data_dir, database_url=database_url, keys_dir=keys_dir))


def add_cards(platform, count: int) -> list[str]:
    from ehc.cards import service as cards
    from ehc.kit.codes import Channel
    from ehc.kit.context import Actor

    made = []
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system(channel=Channel.WINDOW))
        for serial in range(1, count + 1):
            issued = cards.register(ctx, cards.Registration(name="测试人", document_type="01",
                                                            document_number=_document(serial)))
            made.append(issued.card.ehc_id)
    return made


def draw_codes(platform, ehc_ids: list[str], count: int) -> list[str]:
    """``count`` fresh dynamic codes, round robin over the cards, as residents' phones draw them."""
    from ehc.cards.models import Card
    from ehc.kit.context import Actor
    from ehc.qr import service as qr

    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        cards = [session.get(Card, ehc_id) for ehc_id in ehc_ids]
        return [qr.issue_dynamic(ctx, cards[i % len(cards)]).text for i in range(count)]


def _body(code: str) -> bytes:
    return json.dumps({"code": code, "scene": "0101012", "channel": "0600", "terminal_id": "W01",
                       "department": "0300"}).encode()


def signed_verifications(creds: dict, port: int, codes: list[str]) -> list[bytes]:
    return [signed_requests(creds, "POST", PATH, port, _body(code), 1)[0] for code in codes]


def bearer_verifications(creds: dict, port: int, codes: list[str]) -> list[bytes]:
    headers = {"Authorization": f"Bearer {creds['token']}"}
    return [_http("POST", PATH, port, headers, _body(code)) for code in codes]


# -- the measurement ------------------------------------------------------------------------------

WORKERS = (1, 2, 4)  # the scaling rows: the same signed arm against servers of 1, 2 and 4 worker processes


def _arm(server, requests: list[bytes]) -> dict:
    """One round against ``server``, with the server's CPU (µs) per request."""
    cpu = _cpu_seconds(server.process.pid)
    stats = run_load(server.port, requests)
    stats["cpu_us"] = 1e6 * (_cpu_seconds(server.process.pid) - cpu) / len(requests)
    return stats


def measure(database_url: str, tmp: Path, rounds: int, count: int) -> dict[str, list[dict]]:
    keys_dir, data_dir = tmp / "keys", tmp / "pg"
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = prepare(database_url, keys_dir, data_dir)
    platform = _platform(database_url, keys_dir, data_dir)
    ehc_ids = add_cards(platform, CARDS)
    redis = redis_available()  # several workers share their state through Redis, as they run in production
    # One server per worker count, each idle while another is measured.
    servers = {w: Server(database_url, keys_dir, data_dir, workers=w, redis=redis) for w in WORKERS}
    results: dict[str, list[dict]] = {"bearer": []} | {f"{arm}{w}": [] for w in WORKERS for arm in ("signed", "ping")}
    try:
        for server in servers.values():  # warm up every worker
            run_load(server.port, [_http("GET", "/api/v1/apps/ping", server.port, {})] * (count // 4))
            run_load(server.port, bearer_verifications(creds, server.port, draw_codes(platform, ehc_ids, count // 4)))
        for _ in range(rounds):
            # Codes live 120 s: draw them right before each arm, as phones do.
            for w, server in servers.items():
                results[f"signed{w}"].append(_arm(server, signed_verifications(
                    creds, server.port, draw_codes(platform, ehc_ids, count))))
                results[f"ping{w}"].append(_arm(server, [_http("GET", "/api/v1/apps/ping", server.port, {})] * count))
            results["bearer"].append(_arm(servers[1], bearer_verifications(
                creds, servers[1].port, draw_codes(platform, ehc_ids, count))))
    finally:
        for server in servers.values():
            server.stop()
        platform.db.dispose()
    results["redis"] = redis_fsync() if redis else None
    return results


def _median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _spread(rounds: list[dict], key: str, unit: str = "") -> str:
    values = [r[key] for r in rounds]
    return f"{min(values):,.0f}-{max(values):,.0f}{unit}"


def rows_from(results: dict, rounds: int, count: int, load: str) -> list[dict]:
    shared = (f"nonces in Redis ({results['redis']})" if results["redis"] else "no Redis: nonces in the database")
    rows = []
    arms = [(f"signed{w}", f"signed hospital-system call, {w} worker{'s' if w > 1 else ''}", w) for w in WORKERS]
    arms.insert(1, ("bearer", "window clerk's bearer token, 1 worker", 1))
    for arm, caller, workers in arms:
        ping = results[f"ping{workers}"]
        common = (f"uvicorn, {workers} worker{'s' if workers > 1 else ''}, PostgreSQL, {shared}, on the same 2 cores "
                  f"as the load; {CONNECTIONS} keep-alive connections from a separate process, closed loop; {rounds} "
                  f"rounds of {count} verifications a arm, arms interleaved; codes of {CARDS} cards drawn just "
                  f"before each arm; every answer 200; {load}")
        got = results[arm]
        rate, p50, p99 = _median(got, "rate"), _median(got, "p50"), _median(got, "p99")
        ratio = rate / _median(ping, "rate")
        rows.append({
            "figure": f"Online verify-and-record, {caller} (PostgreSQL)",
            "value": round(rate, 1),
            "unit": "verifications/s",
            "reference": "GET /api/v1/apps/ping, anonymous, same server and run",
            "reference_value": round(_median(ping, "rate"), 1),
            "ratio": round(ratio, 3),
            "goal": f">= {GOAL_RATIO}x",
            "met": ratio >= GOAL_RATIO,
            "notes": f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; server CPU {_median(got, 'cpu_us'):,.0f} µs a verification "
                     f"(ping {_median(ping, 'cpu_us'):,.0f} µs; PostgreSQL's own not counted); rounds "
                     f"{_spread(got, 'rate', '/s')}; {common}",
        })
        if workers == 1:
            rows.append({
                "figure": f"Online verify-and-record p99 latency, {caller} (PostgreSQL)",
                "value": round(p99, 1),
                "unit": "ms",
                "reference": "p99 of GET /api/v1/apps/ping, same server and run",
                "reference_value": round(_median(ping, "p99"), 1),
                "ratio": round(p99 / _median(ping, "p99"), 3),
                "goal": f"< {GOAL_P99_MS:.0f} ms",
                "met": p99 < GOAL_P99_MS,
                "notes": f"p50 {p50:.1f} ms (ping p50 {_median(ping, 'p50'):.1f} ms); rounds "
                         f"{_spread(got, 'p99', ' ms')}; {CONNECTIONS} requests in flight at all times, so "
                         f"latency = {CONNECTIONS} / throughput plus queueing",
            })
    return rows


def main(quick: bool = False) -> list[dict]:
    if not _pg_available():
        raise RuntimeError("PostgreSQL does not answer on 127.0.0.1:5432: this figure is defined on PostgreSQL")
    rounds = 3 if quick else 5
    count = 600 if quick else 1500
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        url, drop = _scratch_pg()
        try:
            results = measure(url, Path(tmp_name), rounds, count)
        finally:
            drop()
    load = f"load average {before:.1f} before, {os.getloadavg()[0]:.1f} after (nproc {os.cpu_count()})"
    return rows_from(results, rounds, count, load)


if __name__ == "__main__":
    if "--load" in sys.argv[1:]:
        _load_main()
    else:
        for row in main(quick="--quick" in sys.argv[1:]):
            print(row)
