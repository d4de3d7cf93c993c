"""Statistics: the store's refresh throughput and console query times on a million events (PostgreSQL).

Figures (scratch database ``ehc_bench_stats``, created and dropped through
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` or ``EHC_BENCH_PG_ADMIN_URL``):

1. **Refresh throughput**: ``statistics.service.refresh`` reading generated card uses (with their
   holders' coarse profiles and institutions looked up) into ``stats_events``, events/s. Reference in
   the same run: one ``INSERT INTO stats_events SELECT ... FROM card_uses`` of the same rows in SQL
   (no profile look-up, no Python): the floor the pipeline is compared with.
2. **Console queries** on 1,000,000 events (the store loaded by ``COPY``, a province-year spread over
   21 prefectures, 200 institutions, every care step, channel and hour; then the daily cube rebuilt
   from them, as the refresh would have kept it): ``statistics.service.table`` end to end (the cube's
   SQL, periods, complementary suppression with its exact check) for three typical questions, median
   of 5. Reference: the bare SQL ``GROUP BY`` of the same question over the events; the notes also
   give ``table`` reading the events instead of the cube (``cube=False``), as it did before the cube.
3. **Parquet export and DuckDB**: ``export_parquet`` of the million rows (day/province partitions)
   and the first question aggregated by DuckDB over the files.

Run alone: ``.venv/bin/python bench/bench_statistics.py [--quick]``; or through ``bench/run.py``.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit import dialect
from ehc.kit.context import Actor, Vault
from ehc.migrate import upgrade
from ehc.platform import Platform
from ehc.statistics import service as stats

ADMIN_URL = os.environ.get("EHC_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_NAME = "ehc_bench_stats"
SCENES = ("0101011", "0101012", "010102", "010103", "010104", "0101051", "0101081", "010109")
CHANNELS = ("0100", "0200", "0300", "0401", "0402")
PREFECTURES = [f"51{p:02d}" for p in (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 32, 33, 34)]
YEAR = date(2026, 1, 1)


def _admin(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _institutions(rng: random.Random, count: int = 200) -> list[tuple[str, str]]:
    return [(f"bench-inst-{n:03d}", f"{rng.choice(PREFECTURES)}{rng.randint(1, 30):02d}") for n in range(count)]


def _load_sources(db: Database, uses: int, rng: random.Random, places: list[tuple[str, str]]) -> None:
    """Institutions, 2,000 people and ``uses`` card uses, by COPY."""
    with db.engine.begin() as conn:
        now = datetime.now(UTC).isoformat()
        payload = "".join(f"{i}\t12{r}{n:08d}X0\tBench {n}\thospital\t{r}\t{now}\n" for n, (i, r) in enumerate(places))
        dialect.copy_rows(conn, "institutions", ("id", "uscc", "name", "kind", "region_code", "created_at"),
                          payload.encode())
        people = "".join(f"p{n:08d}\tactive\tf\t{rng.choice('12')}\t{rng.randint(1930, 2025)}\t510104\t{now}\t{now}\n"
                         for n in range(2000))
        dialect.copy_rows(conn, "persons", ("id", "status", "temporary", "sex", "birth_year", "region_code",
                                            "created_at", "updated_at"), people.encode())
        lines = []
        for n in range(uses):
            inst, region = rng.choice(places)
            at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 364 * 86400))
            lines.append(f"E{n}\tp{rng.randrange(2000):08d}\t{rng.choice(SCENES)}\t{rng.choice(CHANNELS)}\t{inst}\t0\t"
                         f"machine\t{at.isoformat()}\tf\t{at.isoformat()}\tf\t{region}\n")
        dialect.copy_rows(conn, "card_uses", ("ehc_id", "person_id", "scene", "channel", "institution_id", "code_type",
                                              "actor_kind", "at", "offline", "recorded_at", "replay", "region_code"),
                          "".join(lines).encode())


REFERENCE_SQL = """
INSERT INTO stats_events (source, source_id, kind, day, hour, region_code, institution_id, channel, care_step)
SELECT 'bench_ref', id, 'use', (at AT TIME ZONE 'Asia/Shanghai')::date,
       extract(hour FROM at AT TIME ZONE 'Asia/Shanghai')::int, coalesce(region_code, '000000'), institution_id,
       channel, scene
FROM card_uses
"""


def _load_store(db: Database, events: int, rng: random.Random, places: list[tuple[str, str]]) -> None:
    """``events`` rows straight into the store (what a year of refreshes leaves), by COPY in chunks."""
    bands = ("0-6", "7-17", "18-44", "45-64", "65+")
    chunk = 200_000
    for start in range(0, events, chunk):
        lines = []
        for n in range(start, min(events, start + chunk)):
            inst, region = rng.choice(places)
            day = YEAR + timedelta(days=rng.randrange(365))
            lines.append(f"card_use\t{n + 1}\tuse\t{day.isoformat()}\t{rng.randrange(24)}\t{region}\t{inst}\t"
                         f"{rng.choice(CHANNELS)}\t{rng.choice(SCENES)}\t{rng.choice(('01', '02', '99'))}\t01\t"
                         f"{rng.choice(bands)}\t{rng.choice('12')}\n")
        with db.engine.begin() as conn:
            dialect.copy_rows(conn, "stats_events", ("source", "source_id", "kind", "day", "hour", "region_code",
                                                     "institution_id", "channel", "care_step", "terminal_type",
                                                     "document_type", "age_band", "sex"), "".join(lines).encode())
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE stats_events"))


QUESTIONS = (
    ("card uses by care step, by month, a province, a year",
     stats.Query("card_uses", by="care_step", period="month", region="510000", start=YEAR, end=date(2026, 12, 31)),
     "SELECT day, care_step, count(*) FROM stats_events WHERE source='card_use' AND kind='use' AND "
     "region_code LIKE '51%' AND day BETWEEN '2026-01-01' AND '2026-12-31' GROUP BY day, care_step"),
    ("card uses by region (drill-down to prefectures), by week, a quarter",
     stats.Query("card_uses", by="region", period="week", region="510000", start=YEAR, end=date(2026, 3, 31)),
     "SELECT day, substr(region_code, 1, 4), count(*) FROM stats_events WHERE source='card_use' AND kind='use' AND "
     "region_code LIKE '51%' AND day BETWEEN '2026-01-01' AND '2026-03-31' GROUP BY day, substr(region_code, 1, 4)"),
    ("card uses by hour of day, by day, a prefecture, a month",
     stats.Query("card_uses", by="hour", period="day", region="510100", start=date(2026, 6, 1), end=date(2026, 6, 30)),
     "SELECT day, hour, count(*) FROM stats_events WHERE source='card_use' AND kind='use' AND "
     "region_code LIKE '5101%' AND day BETWEEN '2026-06-01' AND '2026-06-30' GROUP BY day, hour"),
)


def _median_time(fn, runs: int) -> tuple[float, list[float]]:  # noqa: ANN001
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), times


def main(quick: bool = False) -> list[dict]:
    uses = 20_000 if quick else 200_000
    events = 100_000 if quick else 1_000_000
    runs = 3 if quick else 5
    rng = random.Random(18)
    load_before = os.getloadavg()[0]
    _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DB_NAME}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    rows: list[dict] = []
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            keys_dir = Path(tmp) / "keys"
            KeyStore.init(keys_dir)
            keys = KeyStore(keys_dir)
            platform = Platform(settings=Settings(data_dir=Path(tmp), database_url=url, keys_dir=keys_dir),
                                db=Database(url), keys=keys, vault=Vault(keys))
            db = platform.db
            places = _institutions(rng)
            _load_sources(db, uses, rng, places)
            began = time.perf_counter()
            report = stats.refresh(db, only=["card_use"])
            refresh_seconds = time.perf_counter() - began
            with db.engine.begin() as conn:
                began = time.perf_counter()
                conn.execute(text(REFERENCE_SQL))
                reference_seconds = time.perf_counter() - began
                conn.execute(text("DELETE FROM stats_events"))
            rate, ref_rate = report.stored["card_use"] / refresh_seconds, uses / reference_seconds
            rows.append({
                "figure": f"Statistics refresh, {uses:,} card uses (PostgreSQL)", "value": round(rate),
                "unit": "events/s", "reference": "INSERT ... SELECT of the same rows in SQL (no profile look-up)",
                "reference_value": round(ref_rate), "ratio": round(rate / ref_rate, 3), "goal": None, "met": None,
                "notes": f"batches of {stats.BATCH:,}, each one transaction: read, look up 2,000 people's age band/sex "
                         f"and 200 institutions, insert the events and add them to the daily cube; "
                         f"{refresh_seconds:.1f} s vs {reference_seconds:.1f} s; one run"})

            _load_store(db, events, rng, places)
            began = time.perf_counter()
            stats.rebuild_cube(db)
            cube_seconds = time.perf_counter() - began
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE stats_cube"))
                cube_rows = conn.execute(text("SELECT count(*) FROM stats_cube")).scalar()
            with db.session() as session:
                ctx = platform.ctx(session, Actor.system("bench"))
                for label, query, sql in QUESTIONS:
                    ours, times = _median_time(lambda q=query: stats.table(ctx, q, audit_purpose=False), runs)
                    raw, _ = _median_time(lambda q=query: stats.table(ctx, q, audit_purpose=False, cube=False), runs)
                    bare, bare_times = _median_time(lambda s=sql: session.execute(text(s)).all(), runs)
                    table = stats.table(ctx, query, audit_purpose=False)
                    from_events = stats.table(ctx, query, audit_purpose=False, cube=False)
                    assert table.protected.cells == from_events.protected.cells  # the cube answers as the events
                    cells = len(table.rows) * len(table.columns)
                    rows.append({
                        "figure": f"Console query on {events:,} events: {label}", "value": round(ours * 1000, 1),
                        "unit": "ms", "reference": "the bare SQL GROUP BY", "reference_value": round(bare * 1000, 1),
                        "ratio": round(ours / bare, 2), "goal": "< 1000 ms", "met": ours < 1.0,
                        "notes": f"statistics.service.table end to end from the daily cube ({cube_rows:,} cells, "
                                 f"rebuilt from the events in {cube_seconds:.1f} s), {len(table.rows)} x "
                                 f"{len(table.columns)} = {cells} cells, {len(table.protected.withheld)} withheld; "
                                 f"median of {runs} ({min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms); "
                                 f"from the events instead (cube=False): {raw * 1000:.0f} ms"})
            out = Path(tmp) / "parquet"
            began = time.perf_counter()
            written, _ = stats.export_parquet(db, out)
            export_seconds = time.perf_counter() - began
            import duckdb  # noqa: PLC0415 - the DuckDB figure only

            con = duckdb.connect()
            duck, duck_times = _median_time(lambda: con.sql(
                f"SELECT day, care_step, count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning=1) "
                "WHERE province = 51 GROUP BY day, care_step").fetchall(), runs)
            rows.append({
                "figure": f"Parquet export of {written:,} store rows (day/province partitions)",
                "value": round(written / export_seconds), "unit": "rows/s", "reference": None, "reference_value": None,
                "ratio": None, "goal": None, "met": None,
                "notes": f"statistics.service.export_parquet, {export_seconds:.1f} s; then DuckDB over the files, "
                         f"the first question's GROUP BY: {duck * 1000:.0f} ms (median of {runs})"})
            db.dispose()
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    load = f"; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (nproc {os.cpu_count()})"
    for row in rows:
        row["notes"] += load
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)
