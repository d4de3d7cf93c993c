"""Registry migration speed: ``ehc cards import`` of a million residents into PostgreSQL.

What is timed: the whole import as an operator runs it (hashing the file for the job key, reading
it as a stream, validation with the service's rules, real-name verification, SM4-GCM sealing of
every personal field, HMAC-SM3 blind indexes, and one transaction per batch writing persons,
identifiers, cards, card events and the job's progress), into a freshly migrated scratch database
``ehc_bench_import``. The reference, measured in the same run on the same database: a plain
``COPY`` of the same CSV file into a bare table of text columns (no indexes, no constraints), the
fastest way PostgreSQL can take these rows in.

Ratio = import cards/s ÷ COPY rows/s (equivalently COPY time ÷ import time): the share of raw
COPY speed the import keeps while doing everything above.

The synthetic file (valid, distinct resident ID numbers with their birth dates and sexes, Chinese
names, mobile numbers, addresses) is cached under ``bench/out/`` (git-ignored).

Run alone: ``.venv/bin/python bench/bench_import.py [--quick]`` (1,000,000 rows; quick: 50,000).
"""

from __future__ import annotations

import csv
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
ADMIN_URL = os.environ.get("EHC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATABASE = "ehc_bench_import"
GOAL = 8000.0  # cards per second (issue 12)
CPU_GOAL = 200.0  # µs of CPU per card, import processes + their PostgreSQL backend (issue 12)

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
REGIONS = ("510104", "510105", "510106", "510107", "510108", "510112", "510113", "510114", "510115", "510116",
           "110101", "110102", "110105", "110106", "310101", "310104", "310105", "440103", "440104", "440105",
           "330102", "330105", "420102", "420103", "500103", "500104", "610102", "610103", "320102", "320104")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力永春晓海燕云飞鹏浩宇欣怡佳琪子涵梓轩"
HEADER = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address", "region_code")
STREETS = ("人民南路", "科华北路", "玉林路", "芳草街", "红星路", "建设路", "双林路", "蜀都大道", "天府大道", "长顺街")


def residents(rows: int, seed: int = 20261125, offset: int = 0) -> Iterator[tuple[str, ...]]:
    """``rows`` distinct valid residents as CSV tuples (columns ``HEADER``); fast, deterministic.

    Resident number ``offset + i`` gets its own (region, birth date, serial): never the same ID twice,
    up to 90 million residents.
    """
    rng = random.Random(seed + offset)
    first_day = date(1935, 1, 1)
    days = 30000  # ~82 years of birth dates
    n_regions = len(REGIONS)
    region_sums = [sum(int(d) * w for d, w in zip(r, WEIGHTS[:6])) for r in REGIONS]
    for i in range(offset, offset + rows):
        r = i % n_regions
        day = first_day + timedelta(days=(i // n_regions) * 7919 % days)  # 7919 is prime: a permutation
        serial = i // (n_regions * days)  # 0..99 keeps (region, day, serial) distinct
        born = day.strftime("%Y%m%d")
        tail = f"{serial:02d}{rng.randrange(10)}"  # the last digit carries the sex
        total = region_sums[r] + sum(int(d) * w for d, w in zip(born + tail, WEIGHTS[6:]))
        number = REGIONS[r] + born + tail + CHECK[total % 11]
        male = int(tail[2]) % 2 == 1
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2)))
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        address = f"{rng.choice(STREETS)}{rng.randint(1, 999)}号{rng.randint(1, 30)}栋{rng.randint(101, 2808)}室"
        yield (name, "01", number, "1" if male else "2", day.isoformat(), phone, address, "")


def generate(rows: int, path: Path, seed: int = 20261125) -> Path:
    """Write ``rows`` residents to ``path`` as CSV, unless a complete file is cached there."""
    done = path.with_suffix(".done")
    if path.exists() and done.exists() and done.read_text() == str(rows):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(residents(rows, seed))
    tmp.replace(path)
    done.write_text(str(rows))
    return path


def _admin(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def each_on_a_scratch_database(database: str, parts, quick: bool) -> list[dict]:  # noqa: ANN001
    """Run each ``part(url, keys_dir, quick)`` on a freshly created, migrated PostgreSQL database called
    ``database`` (dropped after each, whatever happens), with the benchmarks' key store; their rows."""
    from ehc.crypto import KeyStore  # only the benchmarks that need a platform load it
    from ehc.migrate import upgrade

    keys_dir = OUT / "keys"
    OUT.mkdir(parents=True, exist_ok=True)
    if not KeyStore(keys_dir).exists:
        KeyStore.init(keys_dir)
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    rows = []
    for part in parts:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{database}"')
        upgrade(url)
        try:
            rows += part(url, keys_dir, quick)
        finally:
            _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return rows


def _fresh_database() -> str:
    from ehc.migrate import upgrade

    _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DATABASE}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    upgrade(url)
    return url


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _import(url: str, path: Path, keys_dir: Path) -> tuple[float, int, dict[str, float]]:
    """Import the file; returns (seconds, cards, CPU seconds of the import's own processes by part).

    The CPU count covers the main process, its worker processes and the PostgreSQL backend serving
    the import (PostgreSQL's shared WAL writer and checkpointer are left out): what the import costs,
    which depends much less than wall time on what else the machine is doing.
    """
    import resource

    from sqlalchemy import text

    from ehc.cards.importer import import_csv
    from ehc.config import Settings
    from ehc.platform import Platform

    tag = f"ehc_bench_import_{os.getpid()}"
    platform = Platform.from_settings(
        Settings(database_url=f"{url}?application_name={tag}", keys_dir=keys_dir, data_dir=OUT))

    def rusage() -> tuple[float, float]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime

    try:
        cpu_before = rusage()
        started = time.perf_counter()
        result = import_csv(platform, path, operator="bench")
        seconds = time.perf_counter() - started
        cpu_after = rusage()  # workers are joined by now, so RUSAGE_CHILDREN has them
        cpu = {"main": cpu_after[0] - cpu_before[0], "workers": cpu_after[1] - cpu_before[1]}
        with platform.db.engine.connect() as conn:
            cards = conn.execute(text("SELECT count(*) FROM cards")).scalar_one()
            # The import's backend (still pooled): its CPU since it started, i.e. the import's work.
            backends = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :tag "
                                         "AND pid <> pg_backend_pid()"), {"tag": tag}).scalars().all()
            mine = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        cpu["postgresql"] = sum(_process_cpu(pid) for pid in backends) + _process_cpu(mine)
        assert result.finished and cards == result.created, (result, cards)
        return seconds, cards, cpu
    finally:
        platform.db.dispose()


def _copy(url: str, path: Path) -> float:
    """Plain COPY of the same CSV, streamed from the client like the import, into a bare table."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute("DROP TABLE IF EXISTS bare_residents")
        conn.execute("CREATE TABLE bare_residents (name text, document_type text, document_number text, sex text, "
                     "birth_date text, phone text, address text, region_code text)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, open(path, "rb") as fh:
            with cur.copy("COPY bare_residents FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while chunk := fh.read(1 << 20):
                    copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bare_residents")
        conn.commit()
    return seconds


def main(quick: bool = False) -> list[dict]:
    from ehc.crypto import KeyStore

    rows = 50_000 if quick else 1_000_000
    runs = 3 if quick else 1  # a million-row import takes minutes; one run, the COPY reference thrice
    path = generate(rows, OUT / f"residents_{rows}.csv")
    keys_dir = OUT / "keys"
    if not KeyStore(keys_dir).exists:
        KeyStore.init(keys_dir)
    import_times, copy_times, cpu_per_card, cpu_parts = [], [], [], []
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    try:
        for _ in range(runs):
            url = _fresh_database()
            seconds, cards, cpu = _import(url, path, keys_dir)
            assert cards == rows, f"{cards} cards for {rows} rows"
            import_times.append(seconds)
            cpu_per_card.append(sum(cpu.values()) / rows * 1e6)
            cpu_parts.append({part: seconds_ / rows * 1e6 for part, seconds_ in cpu.items()})
            copy_times += [_copy(url, path) for _ in range(3)]
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    load_after = os.getloadavg()[0]
    import_s = statistics.median(import_times)
    copy_s = statistics.median(copy_times)
    rate, copy_rate = rows / import_s, rows / copy_s
    workers = len(os.sched_getaffinity(0))
    spread = (f"; import runs {min(import_times):.1f}-{max(import_times):.1f} s" if runs > 1 else "")
    return [
        {
            "figure": f"CSV import into PostgreSQL, {rows:,} residents (cards/s)",
            "value": rate,
            "unit": "cards/s",
            "reference": "plain COPY of the same CSV into a bare table (rows/s)",
            "reference_value": copy_rate,
            "ratio": rate / copy_rate,
            "goal": f">= {GOAL:,.0f} cards/s",
            "met": rate >= GOAL,
            "notes": (f"median of {runs} import(s), {workers} workers, default batch; everything included "
                      f"(SM3 of the file, validation, verification, SM4-GCM sealing, HMAC-SM3 blind indexes, "
                      f"person + identifier + card + event rows, one transaction per batch); ratio = import "
                      f"rate / COPY rate (= COPY time / import time) = {rate / copy_rate:.4f}; COPY median of {len(copy_times)}{spread}; "
                      f"1-min load average {load_before:.1f} before, {load_after:.1f} after, on {workers} cores"),
        },
        {
            "figure": "CPU per card: import processes + their PostgreSQL backend",
            "value": statistics.median(cpu_per_card),
            "unit": "µs CPU",
            "reference": None,
            "reference_value": None,
            "ratio": None,
            "goal": f"<= {CPU_GOAL:,.0f} µs",
            "met": statistics.median(cpu_per_card) <= CPU_GOAL,
            "notes": (f"user+system CPU of the main process, its workers and its PostgreSQL backend, per card ("
                      + ", ".join(f"{part} {statistics.median(p[part] for p in cpu_parts):.0f}"
                                  for part in ("workers", "postgresql", "main"))
                      + f" µs); "
                      f"less sensitive than wall time to other load on the machine, not immune (caches are shared); implies at most "
                      f"{workers * 1e6 / statistics.median(cpu_per_card):,.0f} cards/s on {workers} otherwise idle "
                      f"cores (PostgreSQL's WAL writer and checkpointer not counted)"),
        },
        {
            "figure": f"CSV import into PostgreSQL, {rows:,} residents (total time)",
            "value": import_s,
            "unit": "s",
            "reference": "plain COPY of the same CSV into a bare table (s)",
            "reference_value": copy_s,
            "ratio": import_s / copy_s,
            "goal": None,
            "met": None,
            "notes": "ratio = import time / COPY time",
        },
    ]


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)
