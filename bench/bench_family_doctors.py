"""Family-doctor coverage on a province: 1,000,000 residents, 300,000 contracts, 2,000,000 follow-up
records (issue 15's figures), on PostgreSQL.

Headline figures:

- the centre's coverage page (``GET /staff/family-doctors/centre``, signed in as the centre's admin:
  teams, members, the coverage table and its chart), p95 and p50 over requests for 20 centres in
  turn, through the app in-process (``TestClient``, no network); the reference is the bare
  ``GET /api/v1/apps/ping`` through the same client in the same run;
- the same figures read through the API (``GET /api/v1/family-doctors/coverage/centres/{id}``);
- the regional rollup (``family_doctors.service.regional_coverage`` for the province: per centre
  residents of the service areas, 65+, under 6, hypertension, diabetes, pregnancy, contracted
  shares, services promised and delivered), median of runs; the reference is the one SQL statement
  the rollup cannot avoid, ``COUNT(*)`` of the 2,000,000 service records joined to their contracts.

The province is synthetic and loaded with ``COPY`` (only the coarse clear fields of ``persons``:
region, birth year, sex; no sealed data is needed for coverage): 100 counties of 10,000 residents,
one community centre per county with 3 teams serving the county, 3 in 10 residents contracted,
about 1 in 12 with hypertension and 1 in 19 with diabetes on record, 6.7 service records per
contract. Scratch database ``ehc_bench_family_doctors`` (created and dropped through
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``, or ``EHC_BENCH_PG_ADMIN_URL``).

Run alone: ``.venv/bin/python bench/bench_family_doctors.py [--quick]``; or through ``bench/run.py``.
``--quick`` loads a tenth of the province.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from ehc.accounts import service as accounts
from ehc.app import create_app
from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.family_doctors import service as fd
from ehc.kit import dialect
from ehc.kit.context import Actor, Vault
from ehc.kit.ratelimit import RateLimiter
from ehc.migrate import upgrade
from ehc.platform import Platform

ADMIN_URL = os.environ.get("EHC_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_NAME = "ehc_bench_family_doctors"
COUNTIES = [f"51{p:02d}{c:02d}" for p in range(1, 11) for c in range(1, 11)]  # 100 counties of Sichuan (51)
TEAMS_PER_CENTRE = 3
CHUNK = 200_000
TERMS = ('[{"package_id": "pkg-basic", "code": "basic", "kind": "basic", "name": "basic", "price_public_fen": 0, '
         '"price_insurance_fen": 0, "price_resident_fen": 0, "services": [{"code": "health_check", "kind": '
         '"check_up", "name": "check-up", "yearly_count": 1}, {"code": "follow_up", "kind": "follow_up", '
         '"name": "follow-up", "yearly_count": 4}, {"code": "bp_follow_up", "kind": "follow_up", "name": '
         '"blood pressure follow-up", "yearly_count": 4}]}]')


def _admin(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _copy(db: Database, table: str, columns: list[str], rows) -> None:  # noqa: ANN001
    """Stream ``rows`` (tuples of text) into ``table`` with COPY, in chunks."""
    batch: list[str] = []

    def flush() -> None:
        if batch:
            with db.engine.begin() as conn:
                dialect.copy_rows(conn, table, columns, ("\n".join(batch) + "\n").encode())
            batch.clear()

    for row in rows:
        batch.append("\t".join(row))
        if len(batch) >= CHUNK:
            flush()
    flush()


def _load(db: Database, residents: int, contracts: int, deliveries: int) -> list[str]:
    """The synthetic province; answers the centres' institution ids."""
    now = datetime.now(timezone.utc).isoformat()
    today = date.today()
    start, end = (today - timedelta(days=100)).isoformat(), (today + timedelta(days=264)).isoformat()
    centres = [f"c{n:03d}" for n in range(len(COUNTIES))]
    _copy(db, "institutions", ["id", "uscc", "name", "kind", "region_code", "created_at"],
          ((c, f"12{COUNTIES[n]}{n:09d}X", f"社区卫生服务中心{n:03d}", "community_centre", COUNTIES[n], now)
           for n, c in enumerate(centres)))
    teams = [(f"t{n:03d}{k}", centres[n], f"lead-{n:03d}{k}") for n in range(len(centres))
             for k in range(TEAMS_PER_CENTRE)]
    _copy(db, "fd_teams", ["id", "institution_id", "name", "lead_staff_id", "status", "created_at"],
          ((t, c, f"团队{t}", lead, "active", now) for t, c, lead in teams))
    _copy(db, "fd_team_areas", ["team_id", "region_code"], ((t, COUNTIES[int(t[1:4])]) for t, _, _ in teams))
    _copy(db, "fd_team_members", ["team_id", "staff_id", "role", "institution_id", "added_at"],
          ((t, lead, "lead_gp", c, now) for t, c, lead in teams))

    def person(i: int) -> tuple[str, str, str, int]:
        return f"{i:032X}", COUNTIES[i % len(COUNTIES)], "1" if i % 2 else "2", 1930 + (i * 7919) % 96

    _copy(db, "persons", ["id", "status", "temporary", "sex", "birth_year", "region_code", "created_at", "updated_at"],
          ((pid, "active", "f", sex, str(year), region, now, now)
           for pid, region, sex, year in map(person, range(residents))))

    def conditions():  # noqa: ANN202
        for i in range(residents):
            pid, region, sex, year = person(i)
            if i % 7 == 0 and year < 1985:
                yield pid, "hypertension", region, now
            if i % 19 == 0:
                yield pid, "diabetes_t2", region, now
            if i % 97 == 0 and sex == "2" and 1990 <= year <= 2002:
                yield pid, "pregnancy", region, now

    _copy(db, "fd_conditions", ["person_id", "code", "region_code", "recorded_at"], conditions())
    # Contracts: 3 residents in 10 in every county, each with a team of their county's centre.
    signed = [i for i in range(residents) if (i // len(COUNTIES)) % 10 < 3][:contracts]

    def contract_rows():  # noqa: ANN202
        for k, i in enumerate(signed):
            pid, region, sex, year = person(i)
            n = i % len(COUNTIES)
            team, centre, lead = teams[n * TEAMS_PER_CENTRE + k % TEAMS_PER_CENTRE]
            yield (f"k{k:023d}", pid, pid, team, centre, lead, "active", start, end, '["pkg-basic"]', TERMS, "9",
                   "0", "0", "0", region, str(year), sex, "0100", "window", now)

    _copy(db, "fd_contracts", ["id", "person_id", "active_person_id", "team_id", "institution_id", "lead_staff_id",
                               "status", "start_date", "end_date", "package_ids", "terms", "services_due",
                               "price_public_fen", "price_insurance_fen", "price_resident_fen", "region_code",
                               "birth_year", "sex", "channel", "signed_by_kind", "created_at"], contract_rows())

    def delivery_rows():  # noqa: ANN202
        for j in range(deliveries):
            k = j % len(signed)
            i = signed[k]
            n = i % len(COUNTIES)
            team = teams[n * TEAMS_PER_CENTRE + k % TEAMS_PER_CENTRE][0]
            code, kind = ("follow_up", "follow_up") if j >= len(signed) else ("health_check", "check_up")
            yield (f"d{j:023d}", f"k{k:023d}", f"{i:032X}", team, code, kind, now, "0300", str(120 + j % 40),
                   str(70 + j % 25), now)

    _copy(db, "fd_deliveries", ["id", "contract_id", "person_id", "team_id", "service_code", "kind", "performed_at",
                                "channel", "systolic_mmhg", "diastolic_mmhg", "created_at"], delivery_rows())
    # What autovacuum does to freshly loaded tables in production: statistics and the visibility map
    # (index-only scans), so the figures are not those of a table nobody has vacuumed yet.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return centres


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _timed(call, n: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(n):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def main(quick: bool = False) -> list[dict]:
    scale = 10 if quick else 1
    residents, contracts, deliveries = 1_000_000 // scale, 300_000 // scale, 2_000_000 // scale
    load_before = os.getloadavg()[0]
    _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DB_NAME}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            keys_dir = Path(tmp) / "keys"
            KeyStore.init(keys_dir)
            keys = KeyStore(keys_dir)
            platform = Platform(settings=Settings(data_dir=Path(tmp), database_url=url, keys_dir=keys_dir),
                                db=Database(url), keys=keys, vault=Vault(keys))
            began = time.perf_counter()
            centres = _load(platform.db, residents, contracts, deliveries)
            load_seconds = time.perf_counter() - began
            accounts._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # sign-ins are not measured
            sample = centres[:: max(1, len(centres) // 20)][:20]
            tokens = {}
            with platform.db.session() as session:
                ctx = platform.ctx(session, Actor.system("bench"))
                for centre in sample:
                    account = accounts.create_staff(ctx, username=f"admin.{centre}", password="bench password 1",
                                                    role="institution_admin", institution_id=centre)
                    tokens[centre] = accounts.issue_token(session, "staff", account.id)
            for name in platform.limiters:  # hundreds of requests from a handful of identities
                platform.limiters[name] = RateLimiter(0)
            rounds = 2 if quick else 5
            with TestClient(create_app(platform), raise_server_exceptions=True) as client:
                def page(centre: str):  # noqa: ANN202
                    client.cookies.clear()
                    client.cookies.set("ehc_staff", tokens[centre])
                    answer = client.get("/staff/family-doctors/centre?lang=zh")
                    assert answer.status_code == 200 and "fd-coverage" in answer.text, answer.status_code
                    return answer

                def api(centre: str):  # noqa: ANN202
                    client.cookies.clear()
                    answer = client.get(f"/api/v1/family-doctors/coverage/centres/{centre}",
                                        headers={"Authorization": f"Bearer {tokens[centre]}"})
                    assert answer.status_code == 200, answer.text
                    return answer

                page(sample[0])  # warm the templates and the connection pool
                page_ms, api_ms, ping_ms = [], [], []
                for _ in range(rounds):
                    for centre in sample:
                        page_ms += _timed(lambda c=centre: page(c), 1)
                        api_ms += _timed(lambda c=centre: api(c), 1)
                        ping_ms += _timed(lambda: client.get("/api/v1/apps/ping"), 1)
                figures = api(sample[0]).json()["total"]
            rollup_ms, reference_ms = [], []
            for _ in range(3 if quick else 5):
                with platform.db.session() as session:
                    ctx = platform.ctx(session, Actor.system("bench"))
                    began = time.perf_counter()
                    rows, total = fd.regional_coverage(ctx, "510000")
                    rollup_ms.append((time.perf_counter() - began) * 1000)
                    began = time.perf_counter()
                    session.execute(text("SELECT count(*) FROM fd_deliveries d JOIN fd_contracts c ON c.id = "
                                         "d.contract_id WHERE c.status = 'active'")).scalar_one()
                    reference_ms.append((time.perf_counter() - began) * 1000)
            platform.db.dispose()
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')

    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (nproc {os.cpu_count()})"
    size = (f"{residents:,} residents, {contracts:,} contracts, {deliveries:,} service records, "
            f"{len(COUNTIES)} centres x {TEAMS_PER_CENTRE} teams (loaded with COPY in {load_seconds:.0f} s)")
    ping95 = _percentile(ping_ms, 0.95)
    rows_out = []
    for label, values in (("Centre coverage page (staff page, 3 teams), p95", page_ms),
                          ("Centre coverage through the API, p95", api_ms)):
        p95 = _percentile(values, 0.95)
        rows_out.append({
            "figure": f"{label} (PostgreSQL)", "value": round(p95, 1), "unit": "ms",
            "reference": "GET /api/v1/apps/ping p95, same client and run", "reference_value": round(ping95, 1),
            "ratio": round(p95 / ping95, 1) if ping95 else None, "goal": "< 1,000 ms", "met": p95 < 1000,
            "notes": f"p50 {statistics.median(values):.1f} ms, max {max(values):.1f} ms; {len(values)} requests, "
                     f"{len(sample)} centres in turn, in-process TestClient; a centre's area has "
                     f"{figures['residents']:,} residents, {figures['contracted']:,} contracted; {size}; {load}",
        })
    rollup, reference = statistics.median(rollup_ms), statistics.median(reference_ms)
    rows_out.append({
        "figure": "Regional rollup, whole province, per centre (PostgreSQL)", "value": round(rollup / 1000, 2),
        "unit": "s", "reference": "COUNT(*) of the service records joined to their contracts, same run",
        "reference_value": round(reference / 1000, 2), "ratio": round(rollup / reference, 2) if reference else None,
        "goal": "< 10 s", "met": rollup < 10_000,
        "notes": f"family_doctors.service.regional_coverage('510000'): {len(rows)} centres, "
                 f"{total.residents:,} residents, {total.contracted:,} contracted, "
                 f"{total.services_delivered:,}/{total.services_promised:,} services; median of {len(rollup_ms)} runs "
                 f"({min(rollup_ms) / 1000:.2f}-{max(rollup_ms) / 1000:.2f} s); {size}; {load}",
    })
    return rows_out


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv[1:]):
        print(row)
