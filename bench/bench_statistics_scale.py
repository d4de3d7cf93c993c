"""Statistics at national scale: the aggregation job over 100 million card uses (a province-year).

The events are generated straight into Parquet in the export's layout (``day=``/``province=``
partitions, the columns ``ehc stats export`` writes), by DuckDB from ``range()`` with hash-based
columns: 2,000 institutions in 183 counties of 21 prefectures of one province, big hospitals
busier than small ones; care step, channel, terminal type, age band, sex and hour of day drawn with
plausible weights (mornings busiest, most uses at registration and payment); weekdays busier than
weekends. Figures:

1. **Aggregation on DuckDB**: ``statistics.aggregation.run("duckdb", ...)`` (the job's SQL over the
   files, its cube written as Parquet by day and province), wall and CPU time.
2. **Console query p95 on the cubes**: the daily and month cubes loaded into ``stats_cube`` and
   ``stats_month_cube`` of a scratch PostgreSQL database (``statistics.service.load_cube``), then
   ``statistics.service.table`` end to end for four typical questions, 20 runs each, as the console
   asks them (whole months from the month cube when the question allows) and from the daily cube
   alone (``month_cube=False``).
3. **The same job on Spark local** (``local[*]``, 2 cores), over a 10-million-event set (Spark's
   fixed costs per partition and task make 100 million take hours on 2 cores), with DuckDB on the
   same files as the reference, and the two cubes compared cell by cell.
4. **Export throughput from PostgreSQL**: ``statistics.service.export_parquet`` of a million store
   rows, against a plain ``COPY (SELECT ... ORDER BY id) TO STDOUT`` of the same rows in the same run.

The generated files are deleted after the run. Run alone:
``.venv/bin/python bench/bench_statistics_scale.py [--quick]`` (quick: 2 million events, 1 million on
Spark, 100,000 exported); or through ``bench/run.py statistics_scale``.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
from bench_import import OUT, each_on_a_scratch_database
from sqlalchemy import text

from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit import dialect
from ehc.kit.context import Actor, Vault
from ehc.kit.regions import region_prefix
from ehc.platform import Platform
from ehc.statistics import aggregation
from ehc.statistics import service as stats

DATABASE = "ehc_bench_stats_scale"
WORK = OUT / "statistics_scale"
YEAR = date(2026, 1, 1)
PREFECTURES = (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 32, 33, 34)


def _weighted(name: str, seed: int, weights: dict[str, int]) -> str:
    """SQL picking one of ``weights``' values for each event, in proportion (a 100-slot list)."""
    assert sum(weights.values()) == 100, name
    slots = [value for value, weight in weights.items() for _ in range(weight)]
    listed = ", ".join(f"'{v}'" for v in slots)
    return f"[{listed}][1 + CAST(hash(i, {seed}) % 100 AS BIGINT)] AS {name}"


HOURS = {str(h): w for h, w in zip(range(24), (0, 0, 0, 0, 0, 1, 2, 5, 10, 11, 10, 8, 4, 3, 8, 9, 8, 6, 4, 3, 2, 2, 2, 2),
                                     strict=True)}
SCENES = {"0101011": 22, "0101012": 8, "010102": 25, "010103": 20, "010104": 10, "0101051": 7, "0101081": 5,
          "010109": 3}
CHANNELS = {"0100": 35, "0200": 25, "0300": 20, "0401": 15, "0402": 5}
TERMINALS = {"01": 45, "02": 40, "99": 15}
BANDS = {"0-6": 8, "7-17": 10, "18-44": 35, "45-64": 27, "65+": 20}
SEXES = {"1": 48, "2": 52}
DOCUMENTS = {"01": 95, "03": 3, "99": 2}


def generate(con: duckdb.DuckDBPyConnection, directory: Path, events: int) -> None:
    """``events`` card uses as the export's Parquet dataset under ``directory``."""
    # 183 counties spread over the prefectures; 2,000 institutions over the counties, Chengdu's
    # (5101) counties holding more of them.
    con.execute("""CREATE OR REPLACE TABLE places AS
        WITH counties AS (
            SELECT c, printf('51%02d%02d', [{}][1 + c % 21], 1 + c // 21) AS county FROM range(183) t(c))
        SELECT n AS inst, printf('bench-inst-%04d', n) AS institution_id,
               (SELECT county FROM counties WHERE c = CASE WHEN n % 4 = 0 THEN (n // 4) % 9 * 21
                                                        ELSE hash(n, 7) % 183 END) AS region_code
        FROM range(2000) t(n)""".format(", ".join(str(p) for p in PREFECTURES)))
    columns = ", ".join([
        _weighted("hour", 3, HOURS), _weighted("care_step", 4, SCENES), _weighted("channel", 5, CHANNELS),
        _weighted("terminal_type", 6, TERMINALS), _weighted("age_band", 8, BANDS), _weighted("sex", 9, SEXES),
        _weighted("document_type", 10, DOCUMENTS)])
    # Big hospitals busier: the institution drawn as 2000 * u^2.
    con.execute(f"""COPY (
        WITH drawn AS (
            SELECT i, {columns},
                   CAST(floor(2000 * pow((hash(i, 1) % 1000000) / 1000000.0, 2)) AS BIGINT) AS inst,
                   DATE '{YEAR}' + CAST(hash(i, 2) % 365 AS INTEGER) AS d, hash(i, 11) % 10 AS fold
            FROM range({events}) t(i))
        SELECT 'card_use' AS source, 'use' AS kind,
               -- Weekends quieter: 4 in 10 of a weekend day's uses moved to the Friday before.
               CAST(CASE WHEN isodow(d) >= 6 AND fold < 4 THEN d - CAST(isodow(d) - 5 AS INTEGER) ELSE d END
                    AS VARCHAR) AS day,
               CAST(hour AS BIGINT) AS hour, p.region_code, p.institution_id, channel, care_step, terminal_type,
               document_type, age_band, sex, CAST(NULL AS VARCHAR) AS from_status,
               CAST(NULL AS VARCHAR) AS to_status, substr(p.region_code, 1, 2) AS province
        FROM drawn JOIN places p USING (inst))
        TO '{directory}' (FORMAT PARQUET, PARTITION_BY (day, province), OVERWRITE_OR_IGNORE true)""")


def _size(name: str, default: int) -> int:
    """A part's event count, or ``EHC_BENCH_STATS_<name>`` (a shared machine's run may need smaller)."""
    return int(os.environ.get(f"EHC_BENCH_STATS_{name}", default))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def _timed(fn):  # noqa: ANN001, ANN202
    began, cpu = time.perf_counter(), _cpu()
    result = fn()
    return result, time.perf_counter() - began, _cpu() - cpu


QUESTIONS = (
    ("card uses by care step, by month, the province, a year",
     stats.Query("card_uses", by="care_step", period="month", region="510000", start=YEAR, end=date(2026, 12, 31))),
    ("card uses by region (drill-down to prefectures), by week, a quarter",
     stats.Query("card_uses", by="region", period="week", region="510000", start=YEAR, end=date(2026, 3, 31))),
    ("card uses by hour of day, by day, a prefecture, a month",
     stats.Query("card_uses", by="hour", period="day", region="510100", start=date(2026, 6, 1), end=date(2026, 6, 30))),
    ("card uses by region (drill-down to prefectures), in total, the province, a year",
     stats.Query("card_uses", by="region", period="total", region="510000", start=YEAR, end=date(2026, 12, 31))),
)


def _platform(url: str, keys_dir: Path) -> Platform:
    keys = KeyStore(keys_dir)
    return Platform(settings=Settings(data_dir=WORK, database_url=url, keys_dir=keys_dir), db=Database(url),
                    keys=keys, vault=Vault(keys))


def _aggregate_and_query(url: str, keys_dir: Path, quick: bool) -> list[dict]:
    events = _size("EVENTS", 2_000_000 if quick else 100_000_000)
    runs = 5 if quick else 20
    load = os.getloadavg()[0]
    source, out = WORK / "events", WORK / "cube"
    con = duckdb.connect()
    _, gen_seconds, _ = _timed(lambda: generate(con, source, events))
    con.close()
    size = _du(source)
    partitions, seconds, cpu = _timed(lambda: aggregation.run("duckdb", source, out))
    cube_size = _du(out)
    platform = _platform(url, keys_dir)
    cells, load_seconds, _ = _timed(lambda: stats.load_cube(platform.db, out, partitions))
    with platform.db.engine.begin() as conn:
        conn.execute(text("ANALYZE stats_cube"))
        conn.execute(text("ANALYZE stats_month_cube"))
        month_cells = conn.execute(text("SELECT count(*) FROM stats_month_cube")).scalar()
    rows = [{
        "figure": f"Aggregation job on DuckDB, {events:,} card uses (Parquet) into the daily cube",
        "value": round(seconds, 1), "unit": "s", "reference": None, "reference_value": None, "ratio": None,
        "goal": None, "met": None,
        "notes": f"{events / seconds:,.0f} events/s, {cpu:.0f} s CPU ({cpu / events * 1e9:.0f} ns CPU per event); "
                 f"{len(partitions)} day/province partitions, {cells - month_cells:,} daily cube cells and "
                 f"{month_cells:,} month cube cells ({cube_size / 1e6:.0f} MB); "
                 f"the events: {size / 1e9:.2f} GB of Parquet, generated by DuckDB in {gen_seconds:.0f} s; "
                 f"loading the cube into PostgreSQL's stats_cube (COPY): {load_seconds:.0f} s; one run; "
                 f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"}]
    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system("bench"))
        for label, query in QUESTIONS:
            timed = {}
            for months in (True, False):
                times, cpus = [], []
                for _ in range(runs):
                    table, seconds, cpu = _timed(lambda m=months, q=query: stats.table(
                        ctx, q, audit_purpose=False, month_cube=m))
                    times.append(seconds)
                    cpus.append(cpu)
                p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
                timed[months] = (p95, statistics.median(times), statistics.median(cpus), table)
            (p95, median, cpu, table), (daily_p95, daily_median, daily_cpu, _) = timed[True], timed[False]
            served = stats.whole_months(query.start, query.end) is not None and stats.month_cube_serves(
                query, region_prefix(query.region))
            rows.append({
                "figure": f"Console query p95 on the cubes of {events:,} events: {label}",
                "value": round(p95 * 1000, 1), "unit": "ms", "reference": "the daily cube alone (month_cube=False)",
                "reference_value": round(daily_p95 * 1000, 1), "ratio": round(p95 / daily_p95, 3),
                "goal": "< 1000 ms", "met": p95 < 1.0,
                "notes": f"statistics.service.table end to end (PostgreSQL, {cells - month_cells:,} daily cells, "
                         f"{month_cells:,} month cells); {'month cube' if served else 'daily cube (not a month question)'}; "
                         f"{len(table.rows)} x {len(table.columns)} cells, {len(table.protected.withheld)} withheld; "
                         f"{runs} runs each, median {median * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU of this process), "
                         f"daily cube median {daily_median * 1000:.0f} ms ({daily_cpu * 1000:.0f} ms CPU); "
                         f"load average {os.getloadavg()[0]:.1f}"})
    platform.db.dispose()
    return rows


def _spark_against_duckdb(url: str, keys_dir: Path, quick: bool) -> list[dict]:
    events = _size("SPARK_EVENTS", 1_000_000 if quick else 10_000_000)
    load = os.getloadavg()[0]
    source = WORK / "events_spark"
    con = duckdb.connect()
    generate(con, source, events)
    con.close()
    aggregation.spark_session()  # the JVM started before timing: a cluster's is already up
    spark_partitions, spark_seconds, _ = _timed(lambda: aggregation.run("spark", source, WORK / "cube_spark"))
    duck_partitions, duck_seconds, _ = _timed(lambda: aggregation.run("duckdb", source, WORK / "cube_duck"))
    cubes = [f"SELECT * FROM read_parquet('{WORK}/{name}/*/*/*.parquet', hive_partitioning = 1)"
             for name in ("cube_spark", "cube_duck")]
    same = duckdb.sql(f"SELECT (SELECT count(*) FROM ({cubes[0]} EXCEPT ALL {cubes[1]})) + "
                      f"(SELECT count(*) FROM ({cubes[1]} EXCEPT ALL {cubes[0]}))").fetchall()[0][0]
    aggregation.stop_spark()
    for name in ("events_spark", "cube_spark", "cube_duck"):
        shutil.rmtree(WORK / name, ignore_errors=True)
    return [{
        "figure": f"The same job on Spark local ({events:,} card uses)", "value": round(spark_seconds, 1), "unit": "s",
        "reference": "DuckDB, the same SQL over the same files", "reference_value": round(duck_seconds, 1),
        "ratio": round(spark_seconds / duck_seconds, 1), "goal": None, "met": None,
        "notes": f"local[*] on {os.cpu_count()} cores, JVM started before timing; {len(spark_partitions)} partitions "
                 f"both ({len(duck_partitions)} on DuckDB), cubes identical: {same == 0 and spark_partitions == duck_partitions}; "
                 f"run on {events:,} events, not 100 million: at this rate Spark would take about "
                 f"{spark_seconds * 100_000_000 / events / 60:.0f} min for the province-year on this machine; "
                 f"{events / spark_seconds:,.0f} events/s on Spark, {events / duck_seconds:,.0f} on DuckDB; one run; "
                 f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"}]


def _export_from_postgresql(url: str, keys_dir: Path, quick: bool) -> list[dict]:
    events = _size("EXPORT_EVENTS", 100_000 if quick else 1_000_000)
    load = os.getloadavg()[0]
    source = WORK / "events_pg"
    con = duckdb.connect()
    generate(con, source, events)
    tsv = WORK / "events.tsv"
    con.execute(f"""COPY (SELECT source, row_number() OVER () AS source_id, kind, day, hour, region_code,
                               institution_id, channel, care_step, terminal_type, document_type, age_band, sex
                         FROM read_parquet('{source}/*/*/*.parquet', hive_partitioning = true,
                                           hive_types_autocast = false))
                    TO '{tsv}' (FORMAT CSV, DELIMITER '\t', HEADER false)""")
    con.close()
    shutil.rmtree(source, ignore_errors=True)
    platform = _platform(url, keys_dir)
    with platform.db.engine.begin() as conn:
        dialect.copy_rows(conn, "stats_events", ("source", "source_id", "kind", "day", "hour", "region_code",
                                                 "institution_id", "channel", "care_step", "terminal_type",
                                                 "document_type", "age_band", "sex"), tsv.read_bytes())
        conn.execute(text("ANALYZE stats_events"))
    tsv.unlink()
    (written, _), seconds, cpu = _timed(lambda: stats.export_parquet(platform.db, WORK / "export"))
    size = _du(WORK / "export")
    shutil.rmtree(WORK / "export", ignore_errors=True)

    def copy_out() -> int:
        raw = platform.db.engine.raw_connection()
        try:
            total = 0
            with raw.driver_connection.cursor() as cursor, cursor.copy(
                    "COPY (SELECT id, source, kind, day, hour, region_code, institution_id, channel, care_step, "
                    "terminal_type, document_type, age_band, sex, from_status, to_status FROM stats_events "
                    "ORDER BY id) TO STDOUT") as copy:
                for block in copy:
                    total += len(block)
            return total
        finally:
            raw.close()

    copied, copy_seconds, _ = _timed(copy_out)
    platform.db.dispose()
    rate, ref = written / seconds, events / copy_seconds
    return [{
        "figure": f"Export from PostgreSQL to Parquet, {written:,} store rows", "value": round(rate), "unit": "events/s",
        "reference": "COPY (SELECT ... ORDER BY id) TO STDOUT of the same rows", "reference_value": round(ref),
        "ratio": round(rate / ref, 3), "goal": None, "met": None,
        "notes": f"statistics.service.export_parquet (batches of 200,000: read in id order, Parquet by day and "
                 f"province, the mark moved): {seconds:.1f} s, {cpu:.1f} s CPU of this process, {size / 1e6:.0f} MB "
                 f"of Parquet; COPY: {copy_seconds:.1f} s, {copied / 1e6:.0f} MB of text; one run; "
                 f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"}]


PARTS = {"export": _export_from_postgresql, "spark": _spark_against_duckdb, "duckdb": _aggregate_and_query}


def _printed(part):  # noqa: ANN001, ANN202
    def run(url: str, keys_dir: Path, quick: bool) -> list[dict]:
        rows = part(url, keys_dir, quick)
        for row in rows:  # as soon as a part ends: a long run's parts are not lost to a later one's failure
            print(row, flush=True)
        return rows
    return run


def main(quick: bool = False, parts: tuple[str, ...] = tuple(PARTS)) -> list[dict]:
    WORK.mkdir(parents=True, exist_ok=True)
    disk_before = shutil.disk_usage(WORK).free
    try:
        rows = each_on_a_scratch_database(DATABASE, [_printed(PARTS[p]) for p in parts], quick)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    note = f"; nproc {os.cpu_count()}; disk free {disk_before / 1e9:.0f} GB before, generated data deleted after"
    for row in rows:
        row["notes"] += note
    return rows


if __name__ == "__main__":
    # Parts by name (export, spark, duckdb), all by default; each prints its rows when it ends.
    main(quick="--quick" in sys.argv, parts=tuple(a for a in sys.argv[1:] if a in PARTS) or tuple(PARTS))
