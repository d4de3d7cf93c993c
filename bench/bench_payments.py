"""Payments on PostgreSQL: settlements per second end to end against the two services, and the
reconciliation of a day of a million money movements (docs/payments.md).

Settlements. A scratch database ``ehc_bench_payments``; the insurance service and the bank started as
their own processes (``ehc sandbox insurance|bank``, as ``tests/payments_world.py`` does, each with a
fresh data directory); the platform in this process, served by a real uvicorn in a thread (the tests'
``live()``), rate limits off, no background driver (each pay request drives its own settlement inline,
as ``ehc serve`` does before its driver would). ``RESIDENTS`` residents apply for a card and sign in
through the API, are registered at the insurer (employee scheme, deductible met, personal account
empty, so every bill needs both a settle and a charge) and at the bank, and link both through the API;
the bills (the tests' three-item bill, 350.00) are sent through the hospital system's signed API
beforehand. Then a separate driver process (this file with ``--drive``) runs ``CLIENTS`` concurrent
clients (httpx on asyncio), each taking the next bill and paying it in the app
(``POST /api/v1/me/bills/{id}/pay`` with the owner's bearer token) until none is left; every answer
must be a 200 ``paid``. Settlements/s and latency p50/p95 are the medians over ``RUNS`` runs. Before
them, ``SEQUENTIAL`` bills are paid by one client alone (a warm-up, and the cost of one settlement
with no queueing, in the notes).

The platform's own share: ``payments.remote.Remote`` counts its calls and the seconds spent in their
HTTP exchanges; the share is 1 − (service seconds ÷ the sum of the clients' request latencies) over a
run. The service seconds include the loopback network and the sandboxes' queueing; the platform's
part includes its database work, sealing, the SM2 check of every answer and the bank's callbacks it
receives (not counted as requests).

Reference in the same run: the two services' own rate for the same calls made directly, by the same
number of clients from the same driver: per bill ``POST /v1/settle`` at the insurer, then
``POST /v1/charges`` at the bank for the cash share (no signature checked, no callback). Ratio =
platform settlements/s ÷ direct settle+charge pairs/s.

Reconciliation. ``TRANSACTIONS`` money movements of one China day: half insurer settlements, half bank
charges, as the ledger holds them (two lines per transaction, ``insurance:<id>`` / ``bank:<id>``,
loaded into ``payment_ledger`` with ``COPY``) and as the two statements carry them (the CSV and the
pipe-separated text exactly as ``docs/sandboxes.md`` §6 describes). A few deliberate differences on
each side (lines missing from a statement, extra lines, amounts off by a fen) must come out as exactly
those findings. Timed: ``parse_insurer_statement`` + ``parse_bank_statement``, ``ledger_entries`` (the
ledger's side of the day from PostgreSQL) and ``match``: the pieces ``reconcile`` runs; median of
``RECONCILE_RUNS`` runs.

Run alone: ``.venv/bin/python bench/bench_payments.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bench_import import OUT, ROOT, each_on_a_scratch_database

DATABASE = "ehc_bench_payments"
CLIENTS = 8
RESIDENTS = 24
RUNS = 3
SEQUENTIAL = 50  # bills paid by one client alone, before the runs (also a warm-up)
TRANSACTIONS = 1_000_000
RECONCILE_RUNS = 3
SEQUENTIAL = 50  # bills paid by one client alone, before the runs (also a warm-up)
# The tests' bill (tests/payments_world.py ITEMS): 350.00, of which the fund pays 224.00 for an
# employee at a tertiary hospital with the deductible met; the rest is charged to the bank.
ITEMS = [
    {"code": "A001", "name": "诊查费", "category": "A", "quantity": 1, "unit_price_fen": 10_000},
    {"code": "B002", "name": "阿托伐他汀", "category": "B", "self_share_permille": 100, "quantity": 2,
     "unit_price_fen": 10_000},
    {"code": "C003", "name": "自费耗材", "category": "C", "quantity": 1, "unit_price_fen": 5_000},
]


# -- the driver (a separate process) ----------------------------------------------------------------

async def _drive(mode: str, plan_file: str) -> dict:
    import httpx

    plan = json.loads(Path(plan_file).read_text())
    jobs = plan["jobs"]
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    next_index = 0

    async def one(client: httpx.AsyncClient, job: list) -> str:
        if mode == "app":
            bill_id, token = job
            answer = await client.post(f"{plan['platform']}/api/v1/me/bills/{bill_id}/pay",
                                       headers={"Authorization": f"Bearer {token}"})
            return f"{answer.status_code}:{answer.json().get('status') or answer.json().get('code')}"
        settlement_id, insured_id, token = job
        settled = await client.post(f"{plan['insurer']}/v1/settle", json={
            "settlement_id": settlement_id, "insured_id": insured_id, "institution_level": 3, "items": ITEMS,
            "use_account": True})
        if settled.status_code != 200:
            return f"settle:{settled.status_code}"
        charged = await client.post(f"{plan['bank']}/v1/charges", json={
            "charge_id": settlement_id, "token": token, "amount_fen": settled.json()["cash_fen"],
            "description": "bench"})
        return f"{charged.status_code}:{charged.json().get('status')}"

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < len(jobs):
            job = jobs[next_index]
            next_index += 1
            started = time.perf_counter()
            key = await one(client, job)
            latencies.append(time.perf_counter() - started)
            statuses[key] = statuses.get(key, 0) + 1

    limits = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(plan.get("clients", CLIENTS))))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "statuses": statuses, "seconds": seconds,
            "rate": len(latencies) / seconds if seconds else 0.0, "latency_sum": sum(latencies),
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p95_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]}


def _run_driver(mode: str, plan: dict, name: str) -> dict:
    plan_file = OUT / f"payments_plan_{name}.json"
    plan_file.write_text(json.dumps(plan))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--drive", mode, str(plan_file)],
                          check=False, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"driver failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- settlements end to end -------------------------------------------------------------------------

def _world():  # noqa: ANN202 - two test modules
    """The tests' helpers (tests/payments_world.py says it serves the benchmarks too)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import factories
    import payments_world

    return factories, payments_world


def _settlements(url: str, keys_dir: Path, quick: bool) -> list[dict]:
    import httpx
    from fastapi.testclient import TestClient

    from ehc.app import create_app
    from ehc.config import Settings
    from ehc.kit.ids import new_id
    from ehc.kit.ratelimit import RateLimiter
    from ehc.payments import remote as remotes
    from ehc.platform import Platform

    factories, world = _world()
    per_run = 80 if quick else 400
    root = OUT / "payments-services"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    with world.services(root) as (insurer, bank):
        settings = Settings(database_url=url, keys_dir=keys_dir, data_dir=OUT, insurance_url=insurer.url,
                            bank_url=bank.url, payments_timeout=10.0)
        platform = Platform.from_settings(settings)
        for name in platform.limiters:
            platform.limiters[name] = RateLimiter(0)
        app = create_app(platform)
        logging.getLogger("ehc.http").setLevel(logging.WARNING)  # a line a request would flood the output
        institution = factories.make_institution(platform, "inst-bench-01", uscc=factories.uscc("510104", 1),
                                                 name="Bench People's Hospital", region_code="510104", level="3A")
        his = factories.hospital_system(platform, institution)
        people, set_up = [], time.perf_counter()
        with TestClient(app) as client:
            for n in range(RESIDENTS):
                name = "王李张刘陈杨黄赵"[n % 8] + "明华军芳伟丽静强敏磊"[n // 8 % 10] + "一二三四五六七八九"[n % 9]
                person = factories.person(name, date(1960 + n, 1 + n % 12, 1 + n % 28), 100 + n,
                                          phone=f"139{n:08d}")
                ehc_id, headers = factories.card_holder(client, platform, person)
                insured_id = world.insure(insurer, person, balance=0, deductible_met=80_000)
                account = f"62220200{n:08d}"
                world.open_account(bank, account, person["name"], 10**11)
                for path, body in (("/api/v1/me/payments/insurance", {}), ("/api/v1/me/payments/bank",
                                                                           {"account_no": account})):
                    linked = client.post(path, json=body, headers=headers)
                    assert linked.status_code == 201, linked.text
                direct = httpx.post(f"{bank.url}/v1/tokens", json={"account_no": account,
                                                                   "holder_name": person["name"]}).json()["token"]
                people.append({"ehc_id": ehc_id, "token": headers["Authorization"].split(" ", 1)[1],
                               "insured_id": insured_id, "bank_token": direct})
            bills = []
            for r in range(RUNS + 1):  # the first set is paid by one client alone
                run = []
                for i in range(per_run):
                    who = people[i % RESIDENTS]
                    sent = client.post("/api/v1/payments/bills", auth=his, json={
                        "bill_no": f"BENCH-{r}-{i:05d}", "ehc_id": who["ehc_id"], "items": ITEMS})
                    assert sent.status_code == 201, sent.text
                    run.append([sent.json()["id"], who["token"]])
                    if r == RUNS and len(run) == SEQUENTIAL:
                        break
                bills.append(run)
        set_up = time.perf_counter() - set_up

        results, direct_results, shares = [], [], []
        load_before = os.getloadavg()[0]
        with factories.live(app) as base_url:
            platform.settings = replace(platform.settings, public_url=base_url)  # the bank's callbacks come here
            before = sum(x.seconds for x in remotes.in_use())
            alone = _run_driver("app", {"platform": base_url, "jobs": bills[RUNS], "clients": 1}, "alone")
            assert alone["statuses"] == {"200:paid": SEQUENTIAL}, alone["statuses"]
            alone_service = (sum(x.seconds for x in remotes.in_use()) - before) / SEQUENTIAL
            retries: list[int] = []
            for r in range(RUNS):
                before = sum(x.seconds for x in remotes.in_use()), sum(x.calls for x in remotes.in_use())
                done = _run_driver("app", {"platform": base_url, "jobs": bills[r]}, f"app{r}")
                service_seconds = sum(x.seconds for x in remotes.in_use()) - before[0]
                calls = sum(x.calls for x in remotes.in_use()) - before[1]
                assert done["statuses"] == {"200:paid": per_run}, done["statuses"]
                # A call answered uncertainly (e.g. a keep-alive connection the service closed while idle
                # between runs) is retried with the same id: counted, not refused.
                assert calls >= 2 * per_run, f"{calls} service calls for {per_run} settlements"
                retries.append(calls - 2 * per_run)
                shares.append(1 - service_seconds / done["latency_sum"])
                results.append(done)
                jobs = [[new_id(), p["insured_id"], p["bank_token"]]
                        for p in (people[i % RESIDENTS] for i in range(per_run))]
                direct = _run_driver("direct", {"insurer": insurer.url, "bank": bank.url, "jobs": jobs}, f"direct{r}")
                assert direct["statuses"] == {"200:succeeded": per_run}, direct["statuses"]
                direct_results.append(direct)
        load_after = os.getloadavg()[0]
        platform.db.dispose()

    rate = statistics.median(r["rate"] for r in results)
    reference = statistics.median(r["rate"] for r in direct_results)
    p50 = statistics.median(r["p50_ms"] for r in results)
    p95 = statistics.median(r["p95_ms"] for r in results)
    direct_p50 = statistics.median(r["p50_ms"] for r in direct_results)
    share = statistics.median(shares)
    common = (f"{RUNS} runs of {per_run} bills ({RESIDENTS} residents, bills sent beforehand through the signed API; "
              f"set-up {set_up:.0f} s); {CLIENTS} concurrent clients from one httpx/asyncio driver process paying "
              f"in the app, every answer 200 paid; the platform in-process behind one uvicorn (a thread), the "
              f"insurer and the bank as their own processes (SQLite, synchronous=FULL, one lock each), PostgreSQL, "
              f"all on the same {os.cpu_count()} cores; 1-min load average {load_before:.1f} before, "
              f"{load_after:.1f} after")
    return [
        {"figure": "Settlements end to end, POST /api/v1/me/bills/{id}/pay (insurer settle + bank charge)",
         "value": rate, "unit": "settlements/s",
         "reference": "the same settle + charge calls made directly to the two services, same driver and clients "
                      "(pairs/s)",
         "reference_value": reference, "ratio": rate / reference, "goal": None, "met": None,
         "notes": common + f"; runs {_rates(results)}/s; direct runs {_rates(direct_results)}/s, direct p50 "
                           f"{direct_p50:.0f} ms"},
        {"figure": "Settlement latency p95 (pay request, end to end)", "value": p95, "unit": "ms",
         "reference": "p50, same requests", "reference_value": p50, "ratio": p95 / p50, "goal": None, "met": None,
         "notes": common + "; median over runs of each run's percentile"},
        {"figure": "The platform's own share of a settlement request's time", "value": 100 * share, "unit": "%",
         "reference": None, "reference_value": None, "ratio": None, "goal": None, "met": None,
         "notes": "1 − (seconds inside the platform's HTTP exchanges with the insurer and the bank, counted by "
                  "payments.remote.Remote) ÷ (sum of the clients' request latencies), per run; runs "
                  + ", ".join(f"{100 * s:.0f} %" for s in shares)
                  + f"; 2 service calls per settlement, plus {sum(retries)} retried call(s) over all runs "
                    f"(an uncertain answer retried with the same id). One client alone ({SEQUENTIAL} bills first): "
                    f"{alone['p50_ms']:.0f} ms a settlement (p50), {1000 * alone_service:.0f} ms of it in the "
                    f"services. The platform's part is its PostgreSQL work (a profile before the last driver change "
                    f"showed ~42 statements and 10 commits a settlement: the outbox commits before each call and "
                    f"after each answer; leasing the next step with the previous answer saves two flushes, not "
                    f"visible in this noisy figure), sealing, "
                    f"the SM2 check of every answer, waiting for its threads under load, and the bank's callbacks "
                    f"it serves meanwhile"},
    ]


def _rates(runs: list[dict]) -> str:
    return ", ".join(f"{r['rate']:.1f}" for r in runs)


# -- reconciliation of a million movements ----------------------------------------------------------

def _day_data(transactions: int, day: date, seed: int = 7) -> tuple[list, str, str, dict[str, int]]:
    """The ledger's rows, the insurer's CSV and the bank's text for ``day``, with known differences."""
    from ehc.kit.clock import CHINA

    rng = random.Random(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=CHINA)
    step = 86_400 / transactions
    ledger, insurer_lines, bank_lines = [], [], []
    half = transactions // 2
    for i in range(transactions):
        sid = f"S{i:09d}"
        at = start + timedelta(seconds=i * step)
        if i < half:
            fund, account = 20_000 + i % 5_000, i % 3 * 1_000
            covered = fund + account
            ledger.append((f"insurance:{sid}", 1, "insurance", "insurer", f"B{i:09d}", covered, 0, at))
            ledger.append((f"insurance:{sid}", 2, "insurance", "patients", f"B{i:09d}", 0, covered, at))
            utc = at.astimezone(timezone.utc)
            insurer_lines.append(f"SETTLE,{sid},YB{day:%Y%m%d}{i:010d},{sid},{fund},{account},"
                                 f"{utc:%Y-%m-%dT%H:%M:%S}Z")
        else:
            cash = 5_000 + i % 7_000
            ledger.append((f"bank:{sid}", 1, "bank", "bank", f"B{i:09d}", cash, 0, at))
            ledger.append((f"bank:{sid}", 2, "bank", "patients", f"B{i:09d}", 0, cash, at))
            bank_lines.append(f"D|CHG|{sid}|BK{day:%Y%m%d}{i:010d}|{cash}|succeeded|{at:%H%M%S}")
    # The differences: 3 missing from each statement, 2 amounts off by a fen, 2 lines the ledger lacks;
    # a bank decline too (the bank lists it; it moved no money, so it is no finding).
    expected = {"missing": 6, "mismatch": 4, "extra": 4}
    for lines in (insurer_lines, bank_lines):
        for index in sorted(rng.sample(range(len(lines)), 3), reverse=True):
            del lines[index]
        for index in rng.sample(range(len(lines)), 2):
            separator = "|" if "|" in lines[index] else ","
            parts = lines[index].split(separator)
            parts[4] = str(int(parts[4]) + 1)  # the bank's amount; the insurer's fund share
            lines[index] = separator.join(parts)
    insurer_lines += [f"SETTLE,X{n},YB{day:%Y%m%d}9{n:09d},X{n},100,0,{day}T04:00:00Z" for n in range(2)]
    bank_lines += [f"D|CHG|X{n}|BK{day:%Y%m%d}9{n:09d}|100|succeeded|120000" for n in range(2)]
    bank_lines.append(f"D|CHG|DECLINED1|BK{day:%Y%m%d}8000000000|100|declined|120001")
    insurer_csv = "record,platform_id,insurer_ref,settlement_id,fund_fen,account_fen,at\n" + "\n".join(
        insurer_lines) + "\n"
    net = sum(int(line.split("|")[4]) for line in bank_lines if "|succeeded|" in line)
    bank_text = (f"H|{day:%Y%m%d}|{len(bank_lines)}\n" + "\n".join(bank_lines) + f"\nT|{net}\n")
    expected["matched"] = transactions - expected["missing"] - expected["mismatch"]
    return ledger, insurer_csv, bank_text, expected


def _reconciliation(url: str, keys_dir: Path, quick: bool) -> list[dict]:
    import psycopg

    from ehc.config import Settings
    from ehc.kit.clock import china_today
    from ehc.kit.context import Actor
    from ehc.payments import service
    from ehc.platform import Platform

    transactions = 100_000 if quick else TRANSACTIONS
    day = china_today() - timedelta(days=1)
    ledger, insurer_csv, bank_text, expected = _day_data(transactions, day)
    started = time.perf_counter()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY payment_ledger (txn_id, line, kind, account, bill_id, debit_fen, credit_fen, at) "
                      "FROM STDIN") as copy:
            for row in ledger:
                copy.write_row(row)
        # Other days and other kinds around it, which the day's read must leave out.
        with cur.copy("COPY payment_ledger (txn_id, line, kind, account, bill_id, debit_fen, credit_fen, at) "
                      "FROM STDIN") as copy:
            for n, (txn, kind, at) in enumerate([("bill:O1", "bill", datetime.now().astimezone()),
                                                 ("insurance:O2", "insurance",
                                                  datetime.now().astimezone() - timedelta(days=3))]):
                copy.write_row((txn, 1, kind, "patients", f"O{n}", 100, 0, at))
                copy.write_row((txn, 2, kind, "insurer", f"O{n}", 0, 100, at))
        conn.commit()
        cur.execute("ANALYZE payment_ledger")
    load_seconds = time.perf_counter() - started
    rows = len(ledger)
    del ledger

    platform = Platform.from_settings(Settings(database_url=url, keys_dir=keys_dir, data_dir=OUT))
    timings: dict[str, list[float]] = {"parse": [], "read": [], "match": [], "total": []}
    counts = {}
    for _ in range(1 if quick else RECONCILE_RUNS):
        with platform.db.session() as session:
            ctx = platform.ctx(session, Actor.system("bench"))
            t0 = time.perf_counter()
            theirs = service.parse_insurer_statement(insurer_csv) + service.parse_bank_statement(bank_text)
            t1 = time.perf_counter()
            ours = service.ledger_entries(ctx, day)
            t2 = time.perf_counter()
            findings = service.match(ours, theirs)
            t3 = time.perf_counter()
        counts = {}
        for f in findings:
            counts[f.finding] = counts.get(f.finding, 0) + 1
        assert len(ours) == transactions, (len(ours), transactions)
        assert counts == expected, (counts, expected)
        for key, value in (("parse", t1 - t0), ("read", t2 - t1), ("match", t3 - t2), ("total", t3 - t0)):
            timings[key].append(value)
        del theirs, ours, findings
    platform.db.dispose()
    median = {k: statistics.median(v) for k, v in timings.items()}
    size = (len(insurer_csv.encode()) + len(bank_text.encode())) / 1e6
    notes = (f"{transactions:,} movements of one China day ({transactions // 2:,} insurer SETTLE lines in the CSV, "
             f"{transactions // 2:,} bank CHG lines in the text, {size:.0f} MB of statements) against "
             f"{rows:,} payment_ledger rows loaded by COPY ({load_seconds:.0f} s, with 2 transactions on other "
             f"days or kinds); differences planted and found exactly: {counts}; parse "
             f"{median['parse']:.2f} s, ledger read {median['read']:.2f} s, match {median['match']:.2f} s "
             f"(medians of {len(timings['total'])} run(s): totals "
             f"{', '.join(f'{t:.2f}' for t in timings['total'])} s); in one process on PostgreSQL; the ledger "
             f"read selects 4 columns as tuples (payments.repository.ledger_between), and the cyclic garbage "
             f"collector is paused while the entries and findings are built (payments.service._bulk)")
    return [{"figure": f"Reconciliation of one day of {transactions:,} transactions (parse both statements, read "
                       f"the ledger's side, match)", "value": median["total"], "unit": "s",
             "reference": "of which reading the ledger from PostgreSQL (s)", "reference_value": median["read"],
             "ratio": median["total"] / median["read"], "goal": None, "met": None, "notes": notes}]


def main(quick: bool = False) -> list[dict]:
    return each_on_a_scratch_database(DATABASE, (_settlements, _reconciliation), quick)

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        print(json.dumps(asyncio.run(_drive(sys.argv[2], sys.argv[3]))))
    else:
        for row in main(quick="--quick" in sys.argv):
            print(row)
