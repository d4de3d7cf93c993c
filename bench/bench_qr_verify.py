"""Online verify-and-record: ``POST /api/v1/qr/verify`` on PostgreSQL, throughput and latency.

The platform runs as a real server (``uvicorn --factory ehc.app:app_factory``, one worker, as
``ehc serve`` runs it; ``bench_signed.Server``) on a scratch PostgreSQL database. Before each round,
this process draws fresh dynamic codes for a few hundred cards (each code is single use and lives
120 s) and prepares the requests; a separate load process then fires them over keep-alive
connections (a closed loop: each connection sends its next request when the answer is in) and
times every request from its first byte sent to its last byte read. Every answer must be 200.

What one verification costs the server: decode the code, SM2-verify it, open the card reference,
find the card, claim the (key id, nonce) pair (one INSERT ... ON CONFLICT DO NOTHING), open the holder's
sealed name, sex, birth date and document (SM4), record the card use and the audit event, commit.

Arms (interleaved round by round, so machine noise hits each alike; medians over rounds):

- signed: the hospital system's call, signed with its SM2 key (the server also verifies that
  signature and claims the request nonce), as a HIS calls it;
- bearer: a window clerk's staff token, the same verification without the request signature;
- reference: ``GET /api/v1/apps/ping``, anonymous, the server's empty endpoint;
- bearer with 2 workers: the clerk's arm against a second server of two worker processes (and its
  own empty-endpoint reference), started beside the first and idle while the other is measured.

Profile (cProfile of ``service.verify`` in one process on a quiet machine, 2026-11-26): one
verification runs 11 SQL statements (13 before the claim became one statement) and takes 8.1 ms
of wall time (9.4 ms before): the commit with its fsync ~2.2 ms, chaining the audit event at commit
(advisory lock, tail, update) ~1.7 ms, the holder's person and identifiers ~2 ms, the card look-up
~1 ms; SM2 verification is 0.3 ms. The HTTP layer, authentication and the answer add ~5 ms (14.6 ms
a request through the in-process test client). The empty endpoint itself serves only ~260-340
requests/s on this machine, so the goal of 1,000/s is beyond one Python worker by an order of
magnitude; more workers and hosts are how it scales (the path keeps no state in the process).

Goal (issue 4): at least 1,000 verifications/s with p99 under 50 ms, on 2 cores, load from a
separate process. Run alone: ``.venv/bin/python bench/bench_qr_verify.py [--quick]``; or through
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
    _http,
    _pg_available,
    _scratch_pg,
    prepare,
    signed_requests,
)

GOAL_RATE = 1000.0
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
                          timeout=900, check=True)
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

def measure(database_url: str, tmp: Path, rounds: int, count: int) -> dict[str, list[dict]]:
    keys_dir, data_dir = tmp / "keys", tmp / "pg"
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = prepare(database_url, keys_dir, data_dir)
    platform = _platform(database_url, keys_dir, data_dir)
    ehc_ids = add_cards(platform, CARDS)
    server = Server(database_url, keys_dir, data_dir)
    # The same platform with two worker processes (as `ehc serve --workers 2` runs it), idle while
    # the other is measured: how far more processes carry the path on these two cores.
    pair = Server(database_url, keys_dir, data_dir, workers=2)
    results: dict[str, list[dict]] = {"signed": [], "bearer": [], "ping": [], "bearer2": [], "ping2": []}
    try:
        port, port2 = server.port, pair.port
        ping = [_http("GET", "/api/v1/apps/ping", port, {})] * count
        ping2 = [_http("GET", "/api/v1/apps/ping", port2, {})] * count
        for p, warm in ((port, ping), (port2, ping2)):  # warm up the servers
            run_load(p, warm[: count // 4])
            run_load(p, bearer_verifications(creds, p, draw_codes(platform, ehc_ids, count // 4)))
        for _ in range(rounds):
            # Codes live 120 s: draw them right before each arm, as phones do.
            results["signed"].append(run_load(port, signed_verifications(
                creds, port, draw_codes(platform, ehc_ids, count))))
            results["bearer"].append(run_load(port, bearer_verifications(
                creds, port, draw_codes(platform, ehc_ids, count))))
            results["ping"].append(run_load(port, ping))
            results["bearer2"].append(run_load(port2, bearer_verifications(
                creds, port2, draw_codes(platform, ehc_ids, count))))
            results["ping2"].append(run_load(port2, ping2))
    finally:
        server.stop()
        pair.stop()
        platform.db.dispose()
    return results


def _median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _spread(rounds: list[dict], key: str, unit: str = "") -> str:
    values = [r[key] for r in rounds]
    return f"{min(values):,.0f}-{max(values):,.0f}{unit}"


def rows_from(results: dict[str, list[dict]], rounds: int, count: int, load: str) -> list[dict]:
    rows = []
    for arm, caller, workers in (("signed", "signed hospital-system call", 1), ("bearer", "window clerk's bearer token", 1),
                                 ("bearer2", "window clerk's bearer token, 2 workers", 2)):
        ping = results["ping2" if workers == 2 else "ping"]
        common = (f"uvicorn, {workers} worker{'s' if workers > 1 else ''}, PostgreSQL, on the same 2 cores as the "
                  f"load; {CONNECTIONS} keep-alive connections from a separate process, closed loop; {rounds} rounds "
                  f"of {count} verifications a arm, arms interleaved; codes of {CARDS} cards drawn just before "
                  f"each arm; every answer 200; {load}")
        got = results[arm]
        rate, p50, p99 = _median(got, "rate"), _median(got, "p50"), _median(got, "p99")
        rows.append({
            "figure": f"Online verify-and-record, {caller} (PostgreSQL)",
            "value": round(rate, 1),
            "unit": "verifications/s",
            "reference": "GET /api/v1/apps/ping, anonymous, same server and run",
            "reference_value": round(_median(ping, "rate"), 1),
            "ratio": round(rate / _median(ping, "rate"), 3),
            "goal": f">= {GOAL_RATE:,.0f}/s",
            "met": rate >= GOAL_RATE,
            "notes": f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; rounds {_spread(got, 'rate', '/s')}; {common}",
        })
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
    rounds = 2 if quick else 5
    count = 400 if quick else 1500
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
