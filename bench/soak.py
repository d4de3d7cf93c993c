"""Soak: a mixed workload at 70% of the measured peak for ten minutes; errors, memory and latency.

``make soak`` (or ``.venv/bin/python bench/soak.py [--seconds N]``). The platform runs as a real
server (``uvicorn``, one worker, as ``ehc serve`` runs it) on a scratch PostgreSQL database; the load
comes from a separate process. The mix, a request in four each:

- a resident applies for a card on the website (``POST /api/v1/cards``, a new person every time: a
  write through the master index, the card registry and the audit trail);
- a window clerk looks a card up by document (``POST /api/v1/cards/lookup``: blind index, unseal);
- a hospital system verifies a static code at registration, a signed call that records a card use
  (``POST /api/v1/qr/verify``; SM2 signature, nonce claim, QR check, insert);
- a window clerk reads a card (``GET /api/v1/cards/{id}``).

First the peak: 8 connections send the mix as fast as the server answers, for a minute (a third of
the soak's length in a short run). Then the soak: requests are sent on a fixed schedule at 70% of
that rate (open loop: a slow answer does not slow the sender down, as with real clients), for
``--seconds`` (600 by default). Reported: every answer that is not the expected one (an error, never
tolerated), the server's resident memory at the soak's start and end (``/proc/<pid>/status``), and
the latency quantiles of each minute, so drift shows. The figures go into ``docs/benchmarks.md``
(section ``soak``) and are read into docs/security.md's table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_signed import DOCUMENT, Server, _http, _pg_available, _scratch_pg, prepare  # noqa: E402

SHARE_OF_PEAK = 0.7
CONNECTIONS = 8
SCENE, CHANNEL = "0101012", "0600"


# -- the load generator (its own process) ---------------------------------------------------------

def _applicant(serial: int) -> bytes:
    """A new resident with a valid ID card number (GB 11643) for each serial."""
    year, month, day = 1950 + serial % 50, 1 + serial // 50 % 12, 1 + serial // 600 % 28
    # Region 510105: bench_qr_verify's cards (the lookup and verify targets) are 510104 numbers.
    body = f"510105{year}{month:02d}{day:02d}{serial // 16800 % 1000:03d}"
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    number = body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]
    return json.dumps({"name": "孙丽", "document": {"type": "01", "number": number},
                       "sex": "1" if int(body[16]) % 2 else "2",
                       "birth_date": f"{year}-{body[10:12]}-{body[12:14]}"}).encode()


class Mix:
    """Builds the next request of the mix; signing happens here, in the load process."""

    def __init__(self, spec: dict) -> None:
        from ehc.crypto import SM2PrivateKey

        self.spec, self.port = spec, spec["port"]
        self.key = SM2PrivateKey.from_pem(spec["pem"])
        self.bearer = {"Authorization": f"Bearer {spec['token']}"}
        self.serial = spec["first_serial"]
        self.turn = 0

    def next(self) -> tuple[str, bytes, int]:
        from ehc.apps import signing

        self.turn += 1
        kind = self.turn % 4
        if kind == 0:
            self.serial += 1
            return "apply", _http("POST", "/api/v1/cards", self.port, {}, _applicant(self.serial)), 201
        if kind == 1:
            body = json.dumps({"document": {"type": "01", "number": DOCUMENT}}).encode()
            return "lookup", _http("POST", "/api/v1/cards/lookup", self.port, self.bearer, body), 200
        if kind == 2:
            code = random.choice(self.spec["codes"])
            body = json.dumps({"code": code, "scene": SCENE, "channel": CHANNEL, "terminal_id": "W01",
                               "department": "0300"}).encode()
            headers = signing.sign(self.key, method="POST", path="/api/v1/qr/verify", query="", body=body,
                                   app_id=self.spec["app_id"], key_id=self.spec["key_id"])
            return "verify", _http("POST", "/api/v1/qr/verify", self.port, headers, body), 200
        return "read", _http("GET", f"/api/v1/cards/{random.choice(self.spec['cards'])}", self.port, self.bearer), 200


async def _exchange(reader, writer, request: bytes) -> int:  # noqa: ANN001
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _run(spec: dict) -> dict:
    mix = Mix(spec)
    seconds, rate = spec["seconds"], spec["rate"]  # rate None: as fast as answered (the peak)
    started = time.perf_counter()
    samples: list[tuple[float, float, str, bool]] = []  # (sent at, latency, kind, as expected)
    errors: dict[str, int] = {}
    next_send = [started]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
        try:
            while True:
                now = time.perf_counter()
                if now - started >= seconds:
                    return
                if rate:
                    # One shared schedule: each request has its slot; a connection takes the next one.
                    slot = next_send[0]
                    next_send[0] += 1 / rate
                    if slot > now:
                        await asyncio.sleep(slot - now)
                kind, request, expected = mix.next()
                sent = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors[f"{kind}: {type(exc).__name__}"] = errors.get(f"{kind}: {type(exc).__name__}", 0) + 1
                    samples.append((sent - started, time.perf_counter() - sent, kind, False))
                    reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
                    continue
                ok = status == expected
                if not ok:
                    errors[f"{kind}: {status}"] = errors.get(f"{kind}: {status}", 0) + 1
                samples.append((sent - started, time.perf_counter() - sent, kind, ok))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(spec["connections"])))
    elapsed = time.perf_counter() - started
    minutes = []
    for minute in range(int(-(-elapsed // 60))):
        latencies = sorted(s[1] for s in samples if minute * 60 <= s[0] < (minute + 1) * 60)
        if latencies:
            minutes.append({"minute": minute + 1, "requests": len(latencies),
                            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
                            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1)})
    return {"requests": len(samples), "seconds": elapsed, "rate": len(samples) / elapsed, "errors": errors,
            "minutes": minutes, "last_serial": mix.serial}


def _load_main() -> None:
    print(json.dumps(asyncio.run(_run(json.loads(sys.stdin.read())))))


def run_load(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--load"], input=json.dumps(spec), capture_output=True,
                          text=True, timeout=spec["seconds"] + 600, check=True)
    return json.loads(done.stdout)


# -- the platform under test ------------------------------------------------------------------------

def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _server_pid(server: Server) -> int:
    """The uvicorn process serving requests (the one started, with one worker)."""
    return server.process.pid


def _setup(database_url: str, tmp: Path) -> tuple[dict, Path, Path]:
    from bench_qr_verify import add_cards
    from ehc.cards.models import Card
    from ehc.config import Settings
    from ehc.kit.context import Actor
    from ehc.platform import Platform
    from ehc.qr import service as qr

    keys_dir, data_dir = tmp / "keys", tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = prepare(database_url, keys_dir, data_dir)
    platform = Platform.from_settings(Settings(data_dir=data_dir, database_url=database_url, keys_dir=keys_dir))
    try:
        ehc_ids = add_cards(platform, 50)
        with platform.db.session() as session:
            ctx = platform.ctx(session, Actor.system())
            codes = [qr.issue_static(ctx, session.get(Card, ehc_id)).text for ehc_id in ehc_ids]
    finally:
        platform.db.dispose()
    return {**creds, "cards": ehc_ids, "codes": codes}, keys_dir, data_dir


def soak(seconds: int, peak_seconds: int) -> dict:
    if not _pg_available():
        raise SystemExit("the soak runs on PostgreSQL: none answers on 127.0.0.1:5432")
    url, drop = _scratch_pg()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            creds, keys_dir, data_dir = _setup(url, Path(tmp_name))
            server = Server(url, keys_dir, data_dir)
            try:
                spec = {**creds, "port": server.port, "connections": CONNECTIONS, "first_serial": 0}
                run_load({**spec, "seconds": 10, "rate": None})  # warm up
                peak = run_load({**spec, "seconds": peak_seconds, "rate": None, "first_serial": 100_000})
                target = SHARE_OF_PEAK * peak["rate"]
                pid = _server_pid(server)
                rss = [_rss_mib(pid)]
                stop = threading.Event()

                def sample() -> None:
                    while not stop.wait(10):
                        rss.append(_rss_mib(pid))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                result = run_load({**spec, "seconds": seconds, "rate": target, "first_serial": 200_000,
                                   "connections": 4 * CONNECTIONS})
                stop.set()
                rss.append(_rss_mib(pid))
            finally:
                server.stop()
    finally:
        drop()
    return {"peak": peak, "target": target, "soak": result, "rss": rss}


def rows(outcome: dict, seconds: int) -> list[dict]:
    soak_, minutes = outcome["soak"], outcome["soak"]["minutes"]
    errors = sum(soak_["errors"].values())
    first, last = minutes[0]["p99_ms"], minutes[-1]["p99_ms"]
    p99s = [m["p99_ms"] for m in minutes]
    rss = outcome["rss"]
    return [
        {"figure": "Soak: answers other than the expected one (PostgreSQL, mixed workload)",
         "value": errors, "unit": "answers", "reference": f"{soak_['requests']:,} requests in {seconds} s",
         "reference_value": soak_["requests"], "ratio": round(errors / max(soak_["requests"], 1), 5),
         "goal": "0", "met": errors == 0,
         "notes": f"sent at {outcome['target']:.0f}/s = {SHARE_OF_PEAK:.0%} of the peak {outcome['peak']['rate']:.0f}/s "
                  f"measured just before (8 connections, closed loop); achieved {soak_['rate']:.0f}/s; "
                  f"errors {soak_['errors'] or 'none'}"},
        {"figure": "Soak: server memory (RSS) at the end", "value": round(rss[-1], 1), "unit": "MiB",
         "reference": "RSS at the soak's start", "reference_value": round(rss[0], 1),
         "ratio": round(rss[-1] / rss[0], 3), "goal": "flat (<= 1.1x)", "met": rss[-1] <= 1.1 * rss[0],
         "notes": f"sampled every 10 s: min {min(rss):.1f}, max {max(rss):.1f} MiB; one uvicorn worker"},
        {"figure": "Soak: p99 latency in the last minute", "value": last, "unit": "ms",
         "reference": "p99 in the first minute", "reference_value": first, "ratio": round(last / first, 3),
         "goal": "stable (<= 1.5x)", "met": last <= 1.5 * first,
         "notes": "p99 by minute: " + ", ".join(f"{p:.0f}" for p in p99s) + " ms; p50 by minute: "
                  + ", ".join(f"{m['p50_ms']:.0f}" for m in minutes) + f" ms; median p99 {statistics.median(p99s):.0f} ms"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--no-doc", action="store_true", help="print the rows; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    started = time.monotonic()
    outcome = soak(args.seconds, peak_seconds=min(60, max(10, args.seconds // 3)))
    table = rows(outcome, args.seconds)
    for row in table:
        print(json.dumps(row, ensure_ascii=False))
    if not args.no_doc:
        import run

        run.write_section("soak", run.render("soak", table, quick=args.seconds < 600,
                                             seconds=time.monotonic() - started, error=None))


if __name__ == "__main__":
    if "--load" in sys.argv[1:]:
        _load_main()
    else:
        main()
