"""The aggregation job: the Parquet export aggregated into the daily and the month cube by the same SQL
texts on DuckDB and on Spark (local mode, one session for the whole run: its JVM takes seconds to
start). Both engines give identical cubes, equal to the cubes the refresh maintains; loaded into
``stats_cube`` and ``stats_month_cube``, each makes the console answer exactly as before; on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from factories import run_ehc
from sqlalchemy import delete, select
from test_statistics import CHENGDU_HOSPITAL, DAY, data  # noqa: F401 - data: the fixture
from test_statistics_cube import generated  # noqa: F401 - the fixture: generated events, fed into the store

from ehc.kit.context import Actor
from ehc.kit.errors import Problem
from ehc.statistics import aggregation
from ehc.statistics import service as stats
from ehc.statistics.models import CubeCell, MonthCubeCell

WINDOW = (DAY, DAY + timedelta(days=22))
MONTHS = (date(2026, 11, 1), date(2026, 12, 31))  # whole months: read from the month cube
QUESTIONS = [(indicator, by, period, region, window)
             for indicator in ("card_uses", "cards_issued", "cards_cancelled", "bookings_made", "contracts_signed")
             for by in (None, *stats.INDICATORS[indicator])
             for period, region, window in (("day", None, WINDOW), ("week", "510000", WINDOW),
                                            ("total", "510603", WINDOW), ("month", "440000", WINDOW),
                                            ("month", None, MONTHS), ("total", "510000", MONTHS))]


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    session = aggregation.spark_session()
    yield session
    aggregation.stop_spark()


def cube_files(out: Path) -> list[tuple]:
    return duckdb.sql(
        "SELECT source, dimension, CAST(day AS VARCHAR), kind, to_status, region_code, value, count "
        f"FROM read_parquet('{out}/day=*/province=*/*.parquet', hive_partitioning = true, "
        "hive_types_autocast = false) ORDER BY ALL").fetchall()


def month_files(out: Path) -> list[tuple]:
    return duckdb.sql(
        "SELECT source, dimension, CAST(month AS VARCHAR), kind, to_status, region_code, value, count "
        f"FROM read_parquet('{out}/_month/month=*/province=*/*.parquet', hive_partitioning = true, "
        "hive_types_autocast = false) ORDER BY ALL").fetchall()


def report_files(out: Path) -> list[tuple]:
    return duckdb.sql(
        "SELECT CAST(day AS VARCHAR), region_code, institution_id, care_step, channel, terminal_type, uses "
        f"FROM read_parquet('{out}/_report/day=*/province=*/*.parquet', hive_partitioning = true, "
        "hive_types_autocast = false) ORDER BY ALL").fetchall()


def reports(platform, job_output: Path | None) -> list[list[dict]]:  # noqa: ANN001
    """The daily card-use report of every day of the events, nationally and for Sichuan."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        return [stats.daily_report(ctx, DAY + timedelta(days=n), region, job_output=job_output)
                for n in range(23) for region in (None, "510000", "510104")]


def cube_table(platform) -> list[tuple]:  # noqa: ANN001
    with platform.db.session() as session:
        return sorted((r.source, r.dimension, r.day.isoformat(), r.kind, r.to_status, r.region_code, r.value,
                       int(r.count)) for r in session.scalars(select(CubeCell)))


def month_table(platform) -> list[tuple]:  # noqa: ANN001
    with platform.db.session() as session:
        return sorted((r.source, r.dimension, r.month.isoformat(), r.kind, r.to_status, r.region_code, r.value,
                       int(r.count)) for r in session.scalars(select(MonthCubeCell)))


def answers(platform) -> list[tuple]:  # noqa: ANN001
    out = []
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        for indicator, by, period, region, (start, end) in QUESTIONS:
            query = stats.Query(indicator, by=by, period=period, region=region, start=start, end=end)
            table = stats.table(ctx, query, audit_purpose=False)
            out.append((table.rows, table.columns, table.protected.cells, table.records()))
    return out


def test_duckdb_and_spark_make_the_same_cube_and_the_console_answers_the_same(platform, generated, spark,  # noqa: ANN001, F811
                                                                              tmp_path) -> None:
    export = tmp_path / "export"
    written, _ = stats.export_parquet(platform.db, export, batch=50)  # several batches of files
    assert written > 100
    refreshed, refreshed_months = cube_table(platform), month_table(platform)
    before = answers(platform)

    on_duckdb = stats.aggregate(platform.db, export, engine="duckdb", out=tmp_path / "duck", load=False)
    on_spark = stats.aggregate(platform.db, export, engine="spark", out=tmp_path / "spark", load=False)
    assert on_duckdb.partitions == on_spark.partitions and len(on_duckdb.partitions) > 20
    assert {p for _, p in on_duckdb.partitions} == {"44", "51"}
    # Identical cubes, and each what the refresh keeps in stats_cube from the same events.
    assert cube_files(tmp_path / "duck") == cube_files(tmp_path / "spark") == refreshed
    assert month_files(tmp_path / "duck") == month_files(tmp_path / "spark") == refreshed_months
    assert {month for _, _, month, *_ in refreshed_months} == {"2026-11-01", "2026-12-01"}
    # The national daily report's lines: the same from both engines, and the report read from them is
    # the report read from the store.
    assert report_files(tmp_path / "duck") == report_files(tmp_path / "spark")
    from_store = reports(platform, None)
    assert sum(len(lines) for lines in from_store) > 20
    assert reports(platform, tmp_path / "duck") == reports(platform, tmp_path / "spark") == from_store

    for engine in ("duckdb", "spark"):
        with platform.db.session() as session:
            session.execute(delete(CubeCell))
            session.execute(delete(MonthCubeCell))
        assert answers(platform) != before  # the console reads the cubes
        done = stats.aggregate(platform.db, export, engine=engine, out=tmp_path / engine)
        assert done.cells == len(refreshed) + len(refreshed_months)
        assert (cube_table(platform), month_table(platform)) == (refreshed, refreshed_months)
        assert answers(platform) == before
    # Rerun over the same partitions: replaced, not added to.
    stats.aggregate(platform.db, export, engine="duckdb", out=tmp_path / "duck")
    assert (cube_table(platform), month_table(platform)) == (refreshed, refreshed_months)
    # Only the days from --since are recomputed and replaced, from the first of its month (the month
    # cube's partitions are whole months).
    since = date(2026, 12, 3)
    done = stats.aggregate(platform.db, export, since=since.isoformat(), out=tmp_path / "duck")
    assert done.partitions and all(day >= "2026-12-01" for day, _ in done.partitions)
    assert (cube_table(platform), month_table(platform)) == (refreshed, refreshed_months)


def test_loading_refuses_while_the_store_holds_events_not_exported(platform, data, tmp_path) -> None:  # noqa: ANN001, F811
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(3, institution=CHENGDU_HOSPITAL, region="510104")
    stats.refresh(platform.db)
    export = tmp_path / "export"
    stats.export_parquet(platform.db, export)
    data.uses(2, institution=CHENGDU_HOSPITAL, region="510104")
    stats.refresh(platform.db)  # stored, and in the cube, but not exported
    with pytest.raises(Problem) as refused:
        stats.aggregate(platform.db, export)
    assert refused.value.code == "export_behind"
    assert sum(count for *_, count in cube_table(platform)) == 6 * len(stats.CUBE_DIMENSIONS)  # untouched
    assert sum(count for *_, count in month_table(platform)) == 6 * len(stats.CUBE_DIMENSIONS)
    stats.export_parquet(platform.db, export)
    assert stats.aggregate(platform.db, export).cells > 0
    assert sum(count for *_, count in cube_table(platform)) == 6 * len(stats.CUBE_DIMENSIONS)
    assert sum(count for *_, count in month_table(platform)) == 6 * len(stats.CUBE_DIMENSIONS)
    assert stats.aggregate(platform.db, tmp_path / "empty").partitions == []


def test_ehc_stats_aggregate(platform, settings, data, tmp_path) -> None:  # noqa: ANN001, F811
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(4, institution=CHENGDU_HOSPITAL, region="510104")
    stats.refresh(platform.db)
    export = tmp_path / "export"
    assert run_ehc(settings, "stats", "export", str(export)).returncode == 0
    done = run_ehc(settings, "stats", "aggregate", str(export))
    assert done.returncode == 0, done.stderr
    assert "duckdb: 1 day/province partitions written" in done.stdout
    # A card's and its uses' cells, in the daily and the month cube.
    assert f"{4 * len(stats.CUBE_DIMENSIONS)} cube cells loaded" in done.stdout
    assert (export / "_cube").is_dir()
    # The daily report from the job's output (given the export's directory or the job's): the same file.
    from_store = run_ehc(settings, "stats", "report", DAY.isoformat(), "--out", str(tmp_path / "store.csv"))
    from_job = run_ehc(settings, "stats", "report", DAY.isoformat(), "--from", str(export), "--out",
                       str(tmp_path / "job.csv"))
    assert from_store.returncode == 0 and from_job.returncode == 0, from_job.stderr
    assert (tmp_path / "store.csv").read_bytes() == (tmp_path / "job.csv").read_bytes()
    assert len((tmp_path / "job.csv").read_text().splitlines()) == 2
    from_cube_dir = run_ehc(settings, "stats", "report", DAY.isoformat(), "--from", str(export / "_cube"))
    assert from_cube_dir.stdout == (tmp_path / "job.csv").read_text()
    missing = run_ehc(settings, "stats", "report", DAY.isoformat(), "--from", str(tmp_path / "nothing"))
    assert missing.returncode != 0 and "job_output_missing" in missing.stdout + missing.stderr
    wrong = run_ehc(settings, "stats", "aggregate", str(export), "--engine", "hive")
    assert wrong.returncode == 2 and "--engine" in wrong.stderr
    bad = run_ehc(settings, "stats", "aggregate", str(export), "--since", "yesterday")
    assert bad.returncode != 0 and "since_invalid" in bad.stdout + bad.stderr
