"""Card uses by month on PostgreSQL: writing into the partitioned table, reading and pruning a month,
against the plain table the platform had before migration 0029.

Scratch database ``ehc_bench_partitions`` (created and dropped through
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` or ``EHC_BENCH_PG_ADMIN_URL``), migrated to
head: ``card_uses`` partitioned by China month, the months of 2026 made by ``kit.partitions``; beside
it ``card_uses_plain``, the table as migrations 0007/0008 made it (primary key on id, the same six
indexes), both empty at the start.

1. **Insert throughput**: a year of card uses (3,000,000 by default, ``EHC_BENCH_PARTITION_ROWS``), in
   time order as scans arrive, streamed by ``COPY`` in chunks of 100,000 rows, a chunk into one table
   then the same chunk into the other (so the shared machine's load falls on both alike). Rows/s of
   the partitioned table; reference: the plain table. CPU is the PostgreSQL backend's own (its
   ``/proc`` times: the server does the work of a COPY), per row.
2. **Batched inserts at the end of the year**: 20,000 more uses of December, as the verify path
   writes them (``INSERT`` of 100-row batches, the id from the sequence), into each table once it
   holds the year: the write a province pays every day.
3. **A month counted**: ``SELECT count(*) ... WHERE at`` within one China month (median of 7, after a
   warm-up), and a month of one institution; partitioned against plain. The partitioned plan reads one
   partition.
4. **A month pruned**: ``DETACH PARTITION`` and ``DROP TABLE`` of the oldest month against a
   ``DELETE`` of the same month's rows from the plain table.
5. **Migration 0029** on the plain table as it then is (put in ``card_uses``' place, the schema set
   back to the revision before): how long a province's table is locked while it becomes partitioned.

Run alone: ``.venv/bin/python bench/bench_card_uses_partitions.py [--quick]``; or through ``bench/run.py``.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from ehc.db import Database
from ehc.kit import dialect, partitions
from ehc.migrate import alembic_config, upgrade

ADMIN_URL = os.environ.get("EHC_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_NAME = "ehc_bench_partitions"
YEAR = 2026
MONTHS = [date(YEAR, m, 1) for m in range(1, 13)]
COLUMNS = ("ehc_id", "person_id", "scene", "channel", "institution_id", "terminal_id", "code_type", "actor_kind",
           "at", "key_id", "nonce", "offline", "recorded_at", "replay", "region_code")
SCENES = ("0101011", "0101012", "010102", "010103", "010104", "0101051", "0101081")
CHANNELS = ("0100", "0200", "0300", "0401", "0402")
CHUNK = 100_000
PLAIN_DDL = (
    "CREATE TABLE card_uses_plain (LIKE card_uses INCLUDING DEFAULTS)",
    "ALTER TABLE card_uses_plain ADD CONSTRAINT pk_card_uses_plain PRIMARY KEY (id)",
    *(f"CREATE INDEX ix_card_uses_plain_{name} ON card_uses_plain ({columns})" for name, columns in (
        ("at", "at"), ("ehc_id", "ehc_id"), ("institution_id", "institution_id"), ("key_nonce", "key_id, nonce"),
        ("person_id", "person_id"), ("region_code", "region_code"))),
)


def _revision_before() -> str:
    """The revision before the migration that partitions card_uses, found by its file (ids get renumbered)."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    [mine] = [r for r in scripts.walk_revisions() if r.path.endswith("_card_uses_month_partitions.py")]
    return mine.down_revision


def _admin(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _backend_cpu(conn) -> float:  # noqa: ANN001
    """CPU seconds (user + system) the connection's PostgreSQL backend has used so far (same machine)."""
    pid = conn.scalar(text("SELECT pg_backend_pid()"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _chunk(rng: random.Random, start: datetime, seconds_per_row: float, first: int, count: int) -> bytes:
    lines = []
    for n in range(first, first + count):
        at = (start + timedelta(seconds=n * seconds_per_row)).isoformat()
        inst = rng.randrange(400)
        lines.append(f"E{rng.randrange(10**9):09d}\tp{rng.randrange(2_000_000):08d}\t{rng.choice(SCENES)}\t"
                     f"{rng.choice(CHANNELS)}\tbench-inst-{inst:03d}\tK{rng.randrange(20):02d}\t0\tmachine\t{at}\t"
                     f"K{rng.randrange(99):02d}\t{rng.getrandbits(64):016x}\tf\t{at}\tf\t51{inst % 21:02d}{inst % 30:02d}\n")
    return "".join(lines).encode()


def _copy_both(db: Database, payload: bytes, order: tuple[str, str]) -> dict[str, tuple[float, float]]:
    timings = {}
    for table in order:
        with db.engine.connect() as conn:
            cpu = _backend_cpu(conn)
            began = time.perf_counter()
            dialect.copy_rows(conn, table, COLUMNS, payload)
            conn.commit()
            wall = time.perf_counter() - began
            timings[table] = (wall, _backend_cpu(conn) - cpu)
    return timings


def _batched_inserts(db: Database, table: str, rows: int, rng: random.Random) -> tuple[float, float]:
    statement = text(f"INSERT INTO {table} (ehc_id, person_id, scene, channel, institution_id, code_type, actor_kind, "
                     "at, key_id, nonce, offline, recorded_at, replay, region_code) VALUES (:e, :p, :s, :c, :i, 0, "
                     "'machine', :at, 'K01', :n, false, :at, false, '510104')")
    december = datetime(YEAR, 12, 20, 2, tzinfo=UTC)
    wall = cpu = 0.0
    for first in range(0, rows, 100):
        batch = [{"e": f"E{rng.randrange(10**9):09d}", "p": f"p{rng.randrange(2_000_000):08d}", "s": "0101011",
                  "c": "0100", "i": f"bench-inst-{rng.randrange(400):03d}", "n": f"{rng.getrandbits(64):016x}",
                  "at": december + timedelta(seconds=first + k)} for k in range(100)]
        with db.engine.connect() as conn:
            before = _backend_cpu(conn)
            began = time.perf_counter()
            conn.execute(statement, batch)
            conn.commit()
            wall += time.perf_counter() - began
            cpu += _backend_cpu(conn) - before
    return wall, cpu


def _median_query(db: Database, sql: str, runs: int = 7) -> tuple[float, list[float], int]:
    with db.engine.connect() as conn:
        count = conn.scalar(text(sql))  # warm-up
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            conn.scalar(text(sql))
            times.append(time.perf_counter() - began)
    return statistics.median(times), times, count


def _row(figure, value, unit, reference, reference_value, notes, goal=None, met=None) -> dict:  # noqa: ANN001
    ratio = value / reference_value if reference_value else None
    return {"figure": figure, "value": value, "unit": unit, "reference": reference, "reference_value": reference_value,
            "ratio": ratio, "goal": goal, "met": met, "notes": notes}


def main(quick: bool = False) -> list[dict]:
    total = 200_000 if quick else int(os.environ.get("EHC_BENCH_PARTITION_ROWS", "3000000"))
    rng = random.Random(18)
    _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DB_NAME}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    rows: list[dict] = []
    try:
        upgrade(url)
        db = Database(url)
        with db.engine.begin() as conn:
            partitions.create_months(conn, "card_uses", "at", MONTHS)
            for ddl in PLAIN_DDL:
                conn.execute(text(ddl))
        load_before = _load()

        # 1. COPY a year in time order, chunk by chunk, alternating which table goes first.
        start = partitions.month_bounds(MONTHS[0])[0]
        spacing = 365 * 86400 / total
        spent = {"card_uses": [0.0, 0.0], "card_uses_plain": [0.0, 0.0]}
        for number, first in enumerate(range(0, total, CHUNK)):
            payload = _chunk(rng, start, spacing, first, min(CHUNK, total - first))
            order = ("card_uses", "card_uses_plain") if number % 2 == 0 else ("card_uses_plain", "card_uses")
            for table, (wall, cpu) in _copy_both(db, payload, order).items():
                spent[table][0] += wall
                spent[table][1] += cpu
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE card_uses"))
            conn.execute(text("ANALYZE card_uses_plain"))
        (p_wall, p_cpu), (q_wall, q_cpu) = spent["card_uses"], spent["card_uses_plain"]
        rows.append(_row(
            f"COPY of a year of card uses ({total:,} rows, time order) into the month-partitioned table",
            total / p_wall, "rows/s", "the same rows into the plain table (before migration 0029)", total / q_wall,
            f"chunks of {CHUNK:,} rows, each into both tables in turn (first one, then the other, alternating); "
            f"partitioned {p_wall:.1f} s wall, backend CPU {p_cpu / total * 1e6:.1f} µs a row; plain {q_wall:.1f} s, "
            f"{q_cpu / total * 1e6:.1f} µs a row; both with the primary key and six indexes; {load_before} before, "
            f"{_load()} after; nproc {os.cpu_count()}"))

        # 2. The day-to-day write once a year is in: batched INSERTs of December uses.
        extra = 2_000 if quick else 20_000
        timings = {}
        for table in ("card_uses_plain", "card_uses", "card_uses_plain", "card_uses"):  # twice each, interleaved
            wall, cpu = _batched_inserts(db, table, extra // 2, rng)
            before = timings.get(table, (0.0, 0.0))
            timings[table] = (before[0] + wall, before[1] + cpu)
        (p_wall, p_cpu), (q_wall, q_cpu) = timings["card_uses"], timings["card_uses_plain"]
        rows.append(_row(
            f"Batched INSERTs of December uses into the partitioned table holding the year ({extra:,} rows)",
            extra / p_wall, "rows/s", "the same into the plain table holding the year", extra / q_wall,
            f"INSERT of 100-row batches, one transaction each, ids from the sequence; two rounds of {extra // 2:,} "
            f"per table, interleaved; backend CPU {p_cpu / extra * 1e6:.0f} µs a row partitioned, "
            f"{q_cpu / extra * 1e6:.0f} µs plain; {_load()}"))

        # 3. A month counted, and a month of one institution.
        june_start, june_end = partitions.month_bounds(date(YEAR, 6, 1))
        where = f"at >= '{june_start.isoformat()}' AND at < '{june_end.isoformat()}'"
        with db.engine.connect() as conn:
            plan = "\n".join(conn.scalars(text(f"EXPLAIN SELECT count(*) FROM card_uses WHERE {where}")))
        scanned = sorted(set(re.findall(r" on (card_uses_\w+)", plan)))
        for label, condition in (("a China month", where),
                                 ("a China month of one institution", f"{where} AND institution_id = 'bench-inst-007'")):
            p_median, p_times, p_count = _median_query(db, f"SELECT count(*) FROM card_uses WHERE {condition}")
            q_median, q_times, q_count = _median_query(db, f"SELECT count(*) FROM card_uses_plain WHERE {condition}")
            assert p_count == q_count, (p_count, q_count)
            rows.append(_row(
                f"count(*) of {label} (June) in the partitioned table", p_median * 1000, "ms",
                "the same count in the plain table", q_median * 1000,
                f"{p_count:,} uses counted; median of 7 after a warm-up (partitioned {min(p_times) * 1000:.1f}-"
                f"{max(p_times) * 1000:.1f} ms, plain {min(q_times) * 1000:.1f}-{max(q_times) * 1000:.1f} ms); "
                f"the partitioned plan reads {', '.join(scanned)} only; {_load()}"))

        # 4. The oldest month pruned.
        january_start, january_end = partitions.month_bounds(MONTHS[0])
        with db.engine.begin() as conn:
            january = conn.scalar(text(f"SELECT count(*) FROM card_uses_{YEAR}_01"))
        began = time.perf_counter()
        with db.engine.begin() as conn:
            partitions.detach_months_before(conn, "card_uses", MONTHS[1], drop=True)
        detached = time.perf_counter() - began
        began = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM card_uses_plain WHERE at >= :a AND at < :b"),
                         {"a": january_start, "b": january_end})
        deleted = time.perf_counter() - began
        rows.append(_row(
            f"A month pruned ({january:,} uses of January): DETACH PARTITION and DROP TABLE", detached * 1000, "ms",
            "DELETE of the same month's rows from the plain table", deleted * 1000,
            f"one run each; the DELETE also leaves {january:,} dead rows for VACUUM to reclaim, the drop gives the "
            f"space back at once; {_load()}"))

        # 5. Migration 0029 itself, on the plain table as it now is (the year less January): the plain
        # table put in card_uses' place under the names migrations 0007/0008 gave, the schema set back
        # to the revision before it, then the upgrade timed.
        with db.engine.begin() as conn:
            kept = conn.scalar(text("SELECT count(*) FROM card_uses_plain"))
            conn.execute(text("ALTER SEQUENCE card_uses_id_seq OWNED BY NONE"))
            conn.execute(text("DROP TABLE card_uses"))
            conn.execute(text("ALTER TABLE card_uses_plain RENAME TO card_uses"))
            conn.execute(text("ALTER TABLE card_uses RENAME CONSTRAINT pk_card_uses_plain TO pk_card_uses"))
            for name in ("at", "ehc_id", "institution_id", "key_nonce", "person_id", "region_code"):
                conn.execute(text(f"ALTER INDEX ix_card_uses_plain_{name} RENAME TO ix_card_uses_{name}"))
            conn.execute(text("ALTER SEQUENCE card_uses_id_seq OWNED BY card_uses.id"))
            conn.execute(text("UPDATE alembic_version SET version_num = :before"), {"before": _revision_before()})
        db.dispose()
        load_before = _load()
        began = time.perf_counter()
        upgrade(url)
        migrated = time.perf_counter() - began
        with db.engine.begin() as conn:
            assert conn.scalar(text("SELECT count(*) FROM card_uses")) == kept
            months = len(partitions.partitions(conn, "card_uses"))
        rows.append(_row(
            f"Migration 0029 on a plain card_uses of {kept:,} uses (11 months)", migrated, "s", None, None,
            f"one run: the rows copied into the partitioned table ({months} partitions with DEFAULT), the primary "
            f"key and six indexes built again, in one transaction ({kept / migrated:,.0f} uses/s); the table is "
            f"locked meanwhile; {load_before} before, {_load()} after"))
    finally:
        try:
            db.dispose()
        except NameError:
            pass
        _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)
