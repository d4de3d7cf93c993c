"""The aggregation job: the Parquet export (``ehc stats export``) into the daily and the month cube, on
DuckDB or Spark.

One SQL text, :data:`CUBE_SQL`, is the job's logic; an engine is only its runner. Each runner shows
the export's rows to the SQL as a view ``events`` (the export's columns, ``day`` as the text of its
partition), runs the SQL, and writes its answer as Parquet partitioned ``day=``/``province=`` under
the output directory, one partition per China day and province, each partition's files replaced as
a whole. The answer has the columns and the grain of ``stats_cube`` (models.CubeCell): the service
loads it there, so the console's queries read it unchanged. A second SQL text, :data:`MONTH_CUBE_SQL`,
folds that answer to months and prefectures (``stats_month_cube``, models.MonthCubeCell), written
beside it under ``_month/`` partitioned ``month=``/``province=``; a third, :data:`REPORT_SQL`, the
national daily card-use report's lines, under ``_report/`` partitioned as the daily cube.

Both engines read the partitions' values as text (no type inference: ``province=00``, the unknown
region, would otherwise become the number 0), and the SQL keeps to what DuckDB and Spark SQL share:
``CAST(... AS STRING)``, ``CAST(... AS DATE)``, ``COALESCE``, ``SUBSTR``, an inline ``VALUES`` table
and ``GROUP BY``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# The cube's breakdowns, as models.CubeCell and service.CUBE_DIMENSIONS have them: dimension -> the
# export's column giving its value (None: the total, whose value is "").
DIMENSIONS = {"": None, "channel": "channel", "document_type": "document_type", "age_band": "age_band",
              "sex": "sex", "institution": "institution_id", "care_step": "care_step",
              "terminal_type": "terminal_type", "hour": "hour",
              # The status an event leaves (a card reported lost leaves "normal"): with the to-status
              # every cell carries, a stock by status is read from the cube (entries minus exits).
              "from_status": "from_status"}
CUBE_COLUMNS = ("source", "dimension", "day", "kind", "to_status", "region_code", "value", "count")
MONTH_CUBE_COLUMNS = ("source", "dimension", "month", "kind", "to_status", "region_code", "value", "count")
MONTH_OUT = "_month"  # the month cube's partitions, under the output directory (hidden from its day= readers)
REPORT_OUT = "_report"  # the national daily card-use report's lines, likewise
ENGINES = ("duckdb", "spark")


def _value() -> str:
    cases = " ".join(f"WHEN '{name}' THEN COALESCE(CAST(e.{column} AS STRING), '')"
                     for name, column in DIMENSIONS.items() if column is not None)
    return f"CASE d.dimension {cases} ELSE '' END"


# Each event is read once and counted in one cell of every dimension: crossed with the nine
# dimension names, the value picked by name. A missing value (NULL) is "" as in the cube. ``since``
# (a partition filter both engines push down to the directory listing) limits the days recomputed.
CUBE_SQL = f"""
SELECT e.source AS source, d.dimension AS dimension, CAST(e.day AS DATE) AS day, e.kind AS kind,
       COALESCE(e.to_status, '') AS to_status, e.region_code AS region_code, {_value()} AS value,
       COUNT(*) AS count, SUBSTR(e.region_code, 1, 2) AS province
FROM events e
CROSS JOIN (VALUES {", ".join(f"('{name}')" for name in DIMENSIONS)}) AS d(dimension)
WHERE e.day >= '{{since}}'
GROUP BY e.source, d.dimension, e.day, e.kind, COALESCE(e.to_status, ''), e.region_code, {_value()}
"""


# The month cube, from the daily cube just made (the view ``cube``): its cells folded to the month
# (its first day) and the prefecture (the region code's first four digits and "00"). Text functions
# only (a date's first-of-month function differs between the engines); the sum cast back to BIGINT
# (DuckDB's would be a 128-bit integer).
MONTH_CUBE_SQL = """
SELECT c.source AS source, c.dimension AS dimension,
       CAST(CONCAT(SUBSTR(CAST(c.day AS STRING), 1, 7), '-01') AS DATE) AS month, c.kind AS kind,
       c.to_status AS to_status, CONCAT(SUBSTR(c.region_code, 1, 4), '00') AS region_code, c.value AS value,
       CAST(SUM(c.count) AS BIGINT) AS count, c.province AS province
FROM cube c
GROUP BY c.source, c.dimension, SUBSTR(CAST(c.day AS STRING), 1, 7), c.kind, c.to_status,
         SUBSTR(c.region_code, 1, 4), c.value, c.province
"""


# The national daily card-use report's grouping (service.daily_report reads the same from the store):
# verified card uses by day, institution, region, care step, channel and terminal type, a missing
# value kept missing (the report shows it as the store's report does).
REPORT_SQL = """
SELECT CAST(e.day AS DATE) AS day, e.region_code AS region_code, e.institution_id AS institution_id,
       e.care_step AS care_step, e.channel AS channel, e.terminal_type AS terminal_type, COUNT(*) AS uses,
       SUBSTR(e.region_code, 1, 2) AS province
FROM events e
WHERE e.source = 'card_use' AND e.kind = 'use' AND e.day >= '{since}'
GROUP BY e.day, e.region_code, e.institution_id, e.care_step, e.channel, e.terminal_type
"""


def _since(since: str) -> str:
    """``since`` (``yyyy-mm-dd``; "" for all) moved back to the first of its month: the month cube is
    made of whole months, so a month begun is recomputed from its first day."""
    if since and not (len(since) == 10 and since[4] == since[7] == "-" and since.replace("-", "").isdigit()):
        raise ValueError("since is yyyy-mm-dd")
    return since[:8] + "01" if since else ""


def cube_sql(since: str = "") -> str:
    """The job's SQL, over the days from the first of ``since``'s month (see :func:`_since`)."""
    return CUBE_SQL.format(since=_since(since))


def report_sql(since: str = "") -> str:
    """The daily report's SQL, over the same days as :func:`cube_sql`."""
    return REPORT_SQL.format(since=_since(since))


def month_partitions(partitions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (month's first day, province) partitions of the month cube that go with the daily cube's
    (day, province) partitions written (each month's days all recomputed: see :func:`cube_sql`)."""
    return sorted({(day[:8] + "01", province) for day, province in partitions})


def _events_glob(source: Path) -> str:
    # Only the export's partitions: the output directory, or anything else, may sit beside them.
    return str(source / "day=*" / "province=*" / "*.parquet")


def _clear(out: Path, partitions: list[tuple[str, str]], time: str = "day") -> None:
    """Remove the partitions about to be written again, so each is replaced as a whole."""
    for when, province in partitions:
        shutil.rmtree(out / f"{time}={when}" / f"province={province}", ignore_errors=True)


def run_duckdb(source: Path, out: Path, since: str = "") -> list[tuple[str, str]]:
    """The job on DuckDB (in-process). Answers the (day, province) partitions written (the month
    cube's, under ``out/_month``, are :func:`month_partitions` of them)."""
    # Loaded when the job runs only: the platform's server never needs it.
    import duckdb  # noqa: PLC0415

    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{_events_glob(source)}', "
                    "hive_partitioning = true, hive_types_autocast = false, union_by_name = true)")
        con.execute(f"CREATE TABLE cube AS {cube_sql(since)}")
        con.execute(f"CREATE TABLE month_cube AS {MONTH_CUBE_SQL}")
        con.execute(f"CREATE TABLE report AS {report_sql(since)}")
        partitions = [(str(d), p) for d, p in con.execute(
            "SELECT DISTINCT CAST(day AS VARCHAR), province FROM cube ORDER BY 1, 2").fetchall()]
        _clear(out, partitions)
        _clear(out / MONTH_OUT, month_partitions(partitions), "month")
        _clear(out / REPORT_OUT, partitions)
        out.mkdir(parents=True, exist_ok=True)
        if partitions:
            con.execute(f"COPY cube TO '{out}' (FORMAT PARQUET, PARTITION_BY (day, province), "
                        "OVERWRITE_OR_IGNORE true, FILENAME_PATTERN 'cube-{uuid}')")
            con.execute(f"COPY month_cube TO '{out / MONTH_OUT}' (FORMAT PARQUET, PARTITION_BY (month, province), "
                        "OVERWRITE_OR_IGNORE true, FILENAME_PATTERN 'cube-{uuid}')")
            if con.execute("SELECT count(*) FROM report").fetchone()[0]:
                con.execute(f"COPY report TO '{out / REPORT_OUT}' (FORMAT PARQUET, PARTITION_BY (day, province), "
                            "OVERWRITE_OR_IGNORE true, FILENAME_PATTERN 'report-{uuid}')")
        return partitions
    finally:
        con.close()


_spark_session = None


def spark_session():  # noqa: ANN201 - a pyspark SparkSession, whose module is loaded lazily
    """A local Spark session for the job (``local[*]``), made once per process."""
    global _spark_session  # noqa: PLW0603 - one JVM per process: starting one takes seconds
    if _spark_session is None:
        # pyspark is heavy (a JVM) and only this job uses it: loaded when a Spark run is asked for.
        from pyspark.sql import SparkSession  # noqa: PLC0415

        _spark_session = (SparkSession.builder.master("local[*]").appName("ehc-stats-aggregate")
                          .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
                          .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
                          .config("spark.sql.session.timeZone", "UTC")
                          .config("spark.sql.shuffle.partitions", "8")
                          .config("spark.ui.enabled", "false")
                          .config("spark.ui.showConsoleProgress", "false")
                          .getOrCreate())
        _spark_session.sparkContext.setLogLevel("ERROR")
    return _spark_session


def stop_spark() -> None:
    """Stop this process's Spark session (its JVM), if one was started; the next run starts another."""
    global _spark_session  # noqa: PLW0603 - the one session of spark_session()
    if _spark_session is not None:
        _spark_session.stop()
        _spark_session = None


def run_spark(source: Path, out: Path, since: str = "", session=None) -> list[tuple[str, str]]:  # noqa: ANN001
    """The same job on Spark (local mode unless ``session`` is a cluster's). Answers the partitions."""
    spark = session or spark_session()
    events = spark.read.option("basePath", str(source)).parquet(_events_glob(source))
    events.createOrReplaceTempView("events")
    cube = spark.sql(cube_sql(since)).cache()
    try:
        partitions = sorted((str(r[0]), r[1]) for r in cube.select("day", "province").distinct().collect())
        _clear(out, partitions)
        _clear(out / MONTH_OUT, month_partitions(partitions), "month")
        _clear(out / REPORT_OUT, partitions)
        if partitions:
            # Dynamic partition overwrite: only the partitions in the answer are replaced; one file
            # per partition, as DuckDB writes it.
            (cube.repartition("day", "province").write.mode("overwrite").partitionBy("day", "province")
             .parquet(str(out)))
            cube.createOrReplaceTempView("cube")
            (spark.sql(MONTH_CUBE_SQL).repartition("month", "province").write.mode("overwrite")
             .partitionBy("month", "province").parquet(str(out / MONTH_OUT)))
            report = spark.sql(report_sql(since))
            if not report.isEmpty():
                (report.repartition("day", "province").write.mode("overwrite").partitionBy("day", "province")
                 .parquet(str(out / REPORT_OUT)))
        return partitions
    finally:
        cube.unpersist()


def run(engine: str, source: Path | str, out: Path | str, since: str = "") -> list[tuple[str, str]]:
    if engine not in ENGINES:
        raise ValueError(f"engines: {', '.join(ENGINES)}")
    runner = run_duckdb if engine == "duckdb" else run_spark
    return runner(Path(source), Path(out), since)
