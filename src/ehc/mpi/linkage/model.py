"""Step 3: the Fellegi-Sunter model of batch linkage, trained and run with Splink (DuckDB in process,
or Spark in local mode for national scale). Only batch linkage imports this module."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.internals.database_api import DatabaseAPISubClass
from splink.internals.settings import Settings
from splink.internals.splink_dataframe import SplinkDataFrame

from .clean import FRAME_COLUMNS
from .decide import deterministic_links

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

COMPARED_FIELDS = ("name", "birth_date", "sex", "phone", "address", "region_code", "id_key")


def comparisons() -> list:
    """Per field, the agreement levels from most to least alike (Splink builds the SQL per backend)."""
    def levels(column: str, *more) -> list:
        return [cll.NullLevel(column), *more, cll.ElseLevel()]

    return [
        cl.CustomComparison(levels(
            "name_py",
            cll.ExactMatchLevel("name").configure(label_for_charts="same characters"),
            cll.ExactMatchLevel("name_py").configure(label_for_charts="same pinyin (homophones)"),
            cll.LevenshteinLevel("name", 1).configure(label_for_charts="one character differs"),
            cll.JaroWinklerLevel("name_py", 0.92).configure(label_for_charts="pinyin Jaro-Winkler >= 0.92"),
            cll.JaroWinklerLevel("name_py", 0.80).configure(label_for_charts="pinyin Jaro-Winkler >= 0.80"),
        ), output_column_name="name"),
        cl.CustomComparison(levels(
            "birth_date",
            cll.ExactMatchLevel("birth_date").configure(label_for_charts="same date"),
            cll.CustomLevel("birth_date_swapped_l = birth_date_r", "day and month swapped"),
            cll.LevenshteinLevel("birth_date", 1).configure(label_for_charts="one digit differs"),
            cll.AbsoluteDateDifferenceLevel("birth_date", input_is_string=True, threshold=1, metric="day")
            .configure(label_for_charts="one day apart"),
            cll.CustomLevel("birth_year_l = birth_year_r and (substr(birth_date_l, 6, 5) = '01-01' "
                            "or substr(birth_date_r, 6, 5) = '01-01')", "same year, one side year only"),
            cll.AbsoluteDateDifferenceLevel("birth_date", input_is_string=True, threshold=1, metric="year")
            .configure(label_for_charts="within a year"),
        ), output_column_name="birth_date"),
        cl.CustomComparison(levels("sex", cll.ExactMatchLevel("sex")), output_column_name="sex"),
        cl.CustomComparison(levels(
            "phone",
            cll.ExactMatchLevel("phone"),
            cll.LevenshteinLevel("phone", 1).configure(label_for_charts="one digit differs"),
        ), output_column_name="phone"),
        cl.CustomComparison(levels(
            "address",
            cll.ExactMatchLevel("address"),
            cll.JaroWinklerLevel("address", 0.90),
            cll.JaroWinklerLevel("address", 0.75),
        ), output_column_name="address"),
        cl.CustomComparison(levels(
            "city",  # the region code's city, or the city read from the address (matching.places)
            cll.ExactMatchLevel("region_code"),
            cll.CustomLevel("city_l = city_r", "same city"),
        ), output_column_name="region_code"),
        cl.CustomComparison(levels("id_key", cll.ExactMatchLevel("id_key").configure(
            label_for_charts="same document")), output_column_name="id_key"),
    ]


def prediction_blocking_rules() -> list:
    """Which pairs get scored: any pair sharing one of these. Chosen so that every realistic error
    leaves at least one intact (a typo in the date: name + year; a new name: phone or document; a
    new surname character: road and house number + given name; a nickname with a mistyped date:
    road and house number + surname), while keeping blocks small enough
    for 1M x 1M (birth date alone would pair ~40M). ``city`` is the region code's, or read from the
    address when the list has no codes (:mod:`..matching.places`)."""
    return [
        block_on("birth_date", "name_initial"),
        block_on("birth_date", "surname_py"),
        block_on("birth_date", "city"),
        block_on("name_py", "birth_year"),
        block_on("name_py", "city"),
        block_on("street", "given_py"),
        block_on("street", "surname_py"),
        block_on("phone"),
        block_on("id_key"),
    ]


def model_settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="link_only",
        comparisons=comparisons(),
        blocking_rules_to_generate_predictions=prediction_blocking_rules(),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=True,
        max_iterations=20,
    )


@dataclass
class Scored:
    """Candidate pairs (``record_id, person_id, match_weight, match_probability, comparison``) and
    what the report shows about the model."""

    pairs: pd.DataFrame
    charts: dict[str, dict] = field(default_factory=dict)  # title -> Vega-Lite spec
    timings: dict[str, float] = field(default_factory=dict)
    prior: float | None = None
    notes: list[str] = field(default_factory=list)


def score_pairs(index: pd.DataFrame, records: pd.DataFrame, *, backend: str = "duckdb", workdir: Path,
                threshold: float = 0.5, seed: int = 7, u_pairs: float = 5e6, em_pairs: float = 2e6,
                step: Callable[[str], None] | None = None) -> Scored:
    """Train the model on these two frames and score the pairs of the prediction blocking rules
    (only pairs with probability >= ``threshold`` come back). ``workdir`` holds any spill files.

    Training always runs in process on DuckDB: it works on samples (u from at most ``u_pairs``
    random pairs, m by EM over at most ``em_pairs`` blocked pairs), so it does not grow with the
    lists, while on Spark each of its hundreds of small queries is a job (a minute for a toy list).
    Scoring every blocked pair is what grows, and that runs on the chosen backend with the trained
    model."""
    logging.getLogger("splink").setLevel(logging.ERROR)
    step = step or (lambda _name: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    columns = list(FRAME_COLUMNS)
    with _database("duckdb", workdir, rows=len(index) + len(records)) as db_api:
        left = db_api.register(index[columns], dataset_display_name="index")
        right = db_api.register(records[columns], dataset_display_name="records")
        linker = Linker([left, right], model_settings(), log_level=None)
        timings["load"] = time.perf_counter() - started

        step("training")
        mark = time.perf_counter()
        prior = _estimate_prior(linker, index, records)
        # One chunk for small inputs: the probe phase costs more queries than it saves.
        linker.training.estimate_u_using_random_sampling(
            max_pairs=u_pairs, seed=seed, num_chunks=1 if len(index) * len(records) < 1e7 else 10)
        # Sampling EM pairs takes a probe pass of its own: only worth it when blocks are large.
        notes = _train_m(linker, em_pairs if len(index) * len(records) > 1e8 else None)
        timings["training"] = time.perf_counter() - mark
        charts = {
            "Match weights of each comparison level": linker.visualisations.match_weights_chart().chart_dict,
            "m and u parameters": linker.visualisations.m_u_parameters_chart().chart_dict,
        }
        step("predicting")
        if backend == "duckdb":
            mark = time.perf_counter()
            pairs, histogram = _predict(linker, threshold)
            timings["prediction"] = time.perf_counter() - mark
        else:
            trained = linker._settings_obj
    if backend != "duckdb":
        mark = time.perf_counter()
        with _database(backend, workdir, rows=len(index) + len(records)) as db_api:
            left = db_api.register(index[columns], dataset_display_name="index")
            right = db_api.register(records[columns], dataset_display_name="records")
            timings[f"load ({backend})"] = time.perf_counter() - mark
            mark = time.perf_counter()
            scorer = Linker([left, right], model_settings(), log_level=None)  # the backend's own SQL
            _copy_parameters(trained, scorer._settings_obj)
            pairs, histogram = _predict(scorer, threshold)
            timings[f"prediction ({backend})"] = time.perf_counter() - mark
    if histogram:
        charts["Distribution of match weights (scored pairs)"] = histogram
    return Scored(pairs=pairs, charts=charts, timings=timings, prior=prior, notes=notes)


def _copy_parameters(source: Settings, target: Settings) -> None:
    """The trained prior, m and u onto the same model built in another SQL dialect."""
    target._probability_two_random_records_match = source._probability_two_random_records_match
    for mine, theirs in zip(source.comparisons, target.comparisons, strict=True):
        for level, other in zip(mine.comparison_levels, theirs.comparison_levels, strict=True):
            if level.is_null_level:
                continue
            other.m_probability = level.m_probability
            other.u_probability = level.u_probability


def _predict(linker: Linker, threshold: float) -> tuple[pd.DataFrame, dict | None]:
    predictions = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    pairs = _pairs(linker, predictions)
    histogram = linker.visualisations.match_weights_histogram(predictions).chart_dict if len(pairs) else None
    return pairs, histogram


def _train_m(linker: Linker, em_pairs: float | None) -> list[str]:
    """m by EM, blocked on birth date (trains the name, phone... levels) then on name pinyin (trains
    the birth date levels); blocked on phone if one of them fails. On small lists a level seen
    only among non-matches can drive an m to 0, which Splink refuses: that session is undone (its
    partial state restored) and noted in the report."""
    notes, done = [], 0
    for rule in (block_on("birth_date"), block_on("name_py"), block_on("phone")):
        if done == 2:
            break
        saved = copy.deepcopy(linker._settings_obj)
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True, max_pairs=em_pairs)
            done += 1
        except ValueError as exc:
            linker._settings_obj = saved
            notes.append(f"EM blocked on {rule.get_blocking_rule('duckdb').blocking_rule_sql} was undone: {exc}")
    return notes


def _estimate_prior(linker: Linker, index: pd.DataFrame, records: pd.DataFrame) -> float:
    """The chance that a random (index, record) pair is a match: the pairs the plain rule finds
    (same document; else same name and birth date, unique in the index), assumed to be 60% of the
    matches, over all pairs. Counted in pandas: the same on every backend, and one Spark job fewer."""
    found = len(deterministic_links(index, records))
    expected = found / 0.6 if found else 0.5 * min(len(index), len(records))
    prior = min(max(expected / max(len(index) * len(records), 1), 1e-12), 0.5)
    linker._settings_obj._probability_two_random_records_match = prior
    return prior


class _database:
    """The Splink backend as a context manager: DuckDB in process, or Spark in local mode."""

    def __init__(self, backend: str, workdir: Path, rows: int = 0) -> None:
        if backend not in ("duckdb", "spark"):
            raise ValueError(f"unknown backend {backend!r}: duckdb or spark")
        self.backend = backend
        self.workdir = Path(workdir)
        self.rows = rows
        self.partitions = max(1, min(200, rows // 100_000))  # ~100k rows a partition; one for small jobs
        self._close: Callable[[], None] = lambda: None

    def __enter__(self) -> DatabaseAPISubClass:
        if self.backend == "duckdb":
            connection = duckdb.connect()
            spill = self.workdir / "duckdb"
            spill.mkdir(parents=True, exist_ok=True)
            connection.execute(f"SET temp_directory = '{spill}'")
            connection.execute("SET preserve_insertion_order = false")
            self._close = connection.close
            return DuckDBAPI(connection=connection)
        spark = spark_session(self.workdir, partitions=self.partitions)
        # heavy and optional: Splink's Spark backend imports pyspark (seconds, a JVM); only --backend spark needs it
        from splink.backends.spark import SparkAPI

        self._close = spark.stop
        # Small jobs keep intermediate tables in memory (persist); large ones write them as Parquet
        # into the job's temporary directory, which is deleted afterwards.
        return SparkAPI(spark_session=spark, num_partitions_on_repartition=self.partitions,
                        break_lineage_method="persist" if self.rows < 2_000_000 else "parquet")

    def __exit__(self, *exc: object) -> None:
        self._close()


def spark_session(workdir: Path, partitions: int = 4) -> SparkSession:
    """A local Spark (two cores) with Splink's similarity functions; every spill file in ``workdir``."""
    # heavy and optional: pyspark takes seconds to import and starts a JVM; only --backend spark needs it
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location  # heavy and optional: imports pyspark too

    local = Path(workdir) / "spark"
    local.mkdir(parents=True, exist_ok=True)
    spark = (
        SparkSession.builder.master("local[2]").appName("ehc-mpi-link")
        .config("spark.jars", similarity_jar_location())
        .config("spark.local.dir", str(local))
        .config("spark.sql.warehouse.dir", str(local / "warehouse"))
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.default.parallelism", str(max(partitions, 2)))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(local / "checkpoints"))
    return spark


def _pairs(linker: Linker, predictions: SplinkDataFrame) -> pd.DataFrame:
    """Scored pairs as (record_id, person_id, match_weight, match_probability, comparison JSON)."""
    frame = predictions.as_pandas_dataframe()
    if frame.empty:
        return pd.DataFrame(columns=["record_id", "person_id", "match_weight", "match_probability", "comparison"])
    index_left = frame["source_dataset_l"] == "index"
    record_id = frame["unique_id_r"].where(index_left, frame["unique_id_l"])
    person_id = frame["unique_id_l"].where(index_left, frame["unique_id_r"])
    comparison = _comparison_json(linker, frame)
    return pd.DataFrame({
        "record_id": record_id.astype(str).values, "person_id": person_id.astype(str).values,
        "match_weight": frame["match_weight"].astype(float).values,
        "match_probability": frame["match_probability"].astype(float).values,
        "comparison": comparison,
    })


def _comparison_json(linker: Linker, frame: pd.DataFrame) -> list[str]:
    """Per field: the agreement level's label and its weight (Splink's ``mw_<field>`` column, log2
    of the Bayes factor). The level is found by its weight, which is distinct per level. No
    personal data, so it can sit in the review queue in clear."""
    labels: dict[str, dict[float, str]] = {}
    for comparison in linker._settings_obj.comparisons:
        levels = {}
        for level in comparison.comparison_levels:
            weight = 0.0 if level.is_null_level else level._log2_bayes_factor
            levels.setdefault(round(float(weight), 4), level.label_for_charts)
        labels[comparison.output_column_name] = levels
    fields = [name for name in labels if f"mw_{name}" in frame.columns]
    weights = {name: frame[f"mw_{name}"].astype(float).round(4).tolist() for name in fields}
    rows = []
    for i in range(len(frame)):
        entry = {name: {"level": labels[name].get(weights[name][i], "?"), "weight": round(weights[name][i], 2)}
                 for name in fields}
        rows.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
    return rows

