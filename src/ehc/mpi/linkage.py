"""Batch linkage of a hospital's legacy patient list to the master index (``ehc mpi link FILE``).

A hospital hands over its patient list (CSV or Parquet: its own patient number ``mrn`` and whatever
demographics it has). Each row is linked to the one person of the index it describes, so the
hospital's number becomes an identifier of that person (``mrn:<institution id>``).

The steps, each a function below:

1. :func:`read_patient_list` reads the file; :func:`clean_rows` checks each row (bad rows go to the
   rejects with reason codes, nothing crashes) and derives the matching keys (toneless pinyin,
   the document's blind index).
2. :func:`export_index` opens the active people of the index in this process (their sealed fields
   are unsealed in memory, in worker processes when there are many; nothing in clear is written
   outside the job's temporary directory, which is deleted at the end).
3. :func:`score_pairs` trains a Fellegi-Sunter model with Splink (DuckDB by default, Spark for
   national scale): u by random sampling, m by EM over two blocking rules, the prior from two
   near-certain rules; then scores the candidate pairs of the prediction blocking rules.
4. :func:`decide` grades each row's best candidate: *certain* links, *probable* and *possible* go
   to the review queue, anything else is unmatched. The same document number short-circuits to
   certain. A certain candidate with a close runner-up is only probable (twins, relatives).
5. :func:`link_file` applies the decisions in one transaction (idempotent: a re-run links nothing
   twice and queues no pair twice) and writes ``links.csv``, ``review.csv`` (masked),
   ``unmatched.csv``, ``rejects.csv`` and ``report.html`` (counts, timings, Splink's charts).

The frames the model sees have these columns (both sides), so the accuracy benchmarks can feed
FEBRL or synthetic sets straight into :func:`score_pairs` and :func:`decide`:
``unique_id, name, name_py, surname_py, given_py, name_initial, sex, birth_date,
birth_date_swapped, birth_year, phone, address, region_code, id_key``.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from ..identity.documents import parse_document
from ..kit.errors import Invalid
from . import names, xref

# -- the input file -------------------------------------------------------------------------------

INPUT_COLUMNS = ("mrn", "name", "sex", "birth_date", "phone", "id_type", "id_number", "address", "region_code")

# Header names hospitals' systems commonly export, mapped to ours (matched after trimming, lower-case).
HEADER_ALIASES = {
    "住院号": "mrn", "病案号": "mrn", "门诊号": "mrn", "患者编号": "mrn", "病人id": "mrn", "登记号": "mrn",
    "patient_id": "mrn", "patient_number": "mrn",
    "姓名": "name", "患者姓名": "name",
    "性别": "sex", "gender": "sex",
    "出生日期": "birth_date", "生日": "birth_date", "dob": "birth_date", "date_of_birth": "birth_date",
    "手机号": "phone", "手机号码": "phone", "联系电话": "phone", "电话": "phone", "mobile": "phone",
    "证件类型": "id_type", "document_type": "id_type",
    "证件号码": "id_number", "身份证号": "id_number", "身份证号码": "id_number", "document_number": "id_number",
    "地址": "address", "住址": "address", "现住址": "address",
    "行政区划": "region_code", "行政区划代码": "region_code", "区划代码": "region_code",
}

_SEX = {"1": "1", "男": "1", "m": "1", "male": "1", "2": "2", "女": "2", "f": "2", "female": "2",
        "0": "0", "未知": "0", "9": "9", "未说明": "9"}
_DATE = re.compile(r"(\d{4})\D?(\d{1,2})\D?(\d{1,2})\D?")
_REGION = re.compile(r"\d{6}")
_MRN_MAX = 64  # how much of a bad MRN the rejects file repeats
_MRN_SYSTEM = xref.System("mrn", "x", "mrn:x")  # the format is the same for every institution


class LinkInputError(Exception):
    """The file as a whole cannot be linked (unreadable, no ``mrn`` column). ``code`` is stable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def read_patient_list(path: Path, *, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """The file's rows as text (missing = ``""``), our column names, and ``line`` (CSV line or
    Parquet row number) for the rejects. Unknown columns are dropped."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            frame = frame.astype("string").fillna("").astype(object)
            first_line = 1
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            first_line = 2  # line 1 is the header
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise LinkInputError("file_unreadable", f"Cannot read {path.name}: {exc}") from None
    renamed = {}
    for column in frame.columns:
        key = str(column).strip().lower()
        key = HEADER_ALIASES.get(key, key)
        if key in INPUT_COLUMNS and key not in renamed.values():
            renamed[column] = key
    frame = frame[list(renamed)].rename(columns=renamed)
    if "mrn" not in frame.columns:
        raise LinkInputError("mrn_column_missing",
                             f"{path.name} has no 'mrn' column (the hospital's patient number; 住院号/病案号 also work).")
    for column in INPUT_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame[list(INPUT_COLUMNS)]
    frame.insert(0, "line", range(first_line, first_line + len(frame)))
    return frame.reset_index(drop=True)


# -- names: toneless pinyin -----------------------------------------------------------------------

@lru_cache(maxsize=1 << 20)
def name_keys(name: str | None) -> tuple[str | None, str | None, str | None]:
    """``(name_py, surname_py, given_py)`` as the real-time matcher reads them (:mod:`.names`:
    surname readings such as 单 shan, compound surnames): ``张伟明`` -> ``zhangweiming, zhang, weiming``.
    Cached: many people share a name, and pinyin is most of the cost of preparing a row."""
    if not name:
        return None, None, None
    parsed = names.parse(name)
    return parsed.pinyin or None, parsed.surname_pinyin or None, parsed.given_pinyin or None


def normalise_name(raw: str) -> str:
    """The name as the matcher compares characters (:func:`.names.normalise`: NFKC, lower case, no
    spaces or dots)."""
    return names.normalise(raw)


def normalise_address(raw: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw))


# -- cleaning rows --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CleanRows:
    """The good rows as a linkage frame (plus ``line``, ``mrn``, ``id_system``, ``id_number``), and the
    rejects as ``(line, mrn, reasons)``."""

    frame: pd.DataFrame
    rejects: list[tuple[int, str, str]]


FRAME_COLUMNS = ("unique_id", "name", "name_py", "surname_py", "given_py", "name_initial", "sex", "birth_date",
                 "birth_date_swapped", "birth_year", "phone", "address", "region_code", "id_key")


def frame_row(unique_id: str, name: str | None, sex: str | None, birth: str | None, phone: str | None,
              address: str | None, region_code: str | None, id_key: str | None) -> tuple:
    """One row of a linkage frame, in :data:`FRAME_COLUMNS` order, from clean values."""
    name_py, surname_py, given_py = name_keys(name)
    swapped = None
    if birth and int(birth[8:10]) <= 12 and birth[5:7] != birth[8:10]:
        swapped = f"{birth[:4]}-{birth[8:10]}-{birth[5:7]}"  # what the date reads as with day and month swapped
    return (unique_id, name or None, name_py, surname_py, given_py, name_py[0] if name_py else None,
            sex if sex in ("1", "2") else None, birth, swapped, birth[:4] if birth else None,
            phone or None, address or None, region_code or None, id_key)


def _clean_birth(raw: str) -> tuple[str | None, str | None]:
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None, None
    found = _DATE.fullmatch(text.split(" ")[0].split("T")[0])
    if not found:
        return None, "birth_date_invalid"
    try:
        born = date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None, "birth_date_invalid"
    if born > date.today() or born.year < 1880:
        return None, "birth_date_out_of_range"
    return born.isoformat(), None


def _clean_phone(raw: str) -> tuple[str | None, str | None]:
    """Mobile numbers as their 11 digits; landlines (7-12 digits) kept as digits; else a reason."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None, None
    digits = re.sub(r"[\s\-()+]", "", text)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not digits.isdigit() or not 7 <= len(digits) <= 12:
        return None, "phone_invalid"
    return digits, None


def _clean_mrn(raw: str) -> tuple[str, str | None]:
    """The hospital number as the index stores it (:func:`.xref.normalise`: upper case, 1-40 letters,
    digits and . _ / -)."""
    if not raw.strip():
        return "", "mrn_missing"
    try:
        return xref.normalise(_MRN_SYSTEM, raw).value, None
    except Invalid:
        return raw.strip()[:_MRN_MAX], "mrn_invalid"


def _clean_document(id_type: str, raw: str) -> tuple[str | None, str | None, str | None]:
    """``(system, number, reason)``; the number normalised and checked like a registration's."""
    number = raw.strip()
    if not number:
        return None, None, None
    try:
        document = parse_document((id_type.strip() or "01").zfill(2), number)
    except Invalid as problem:
        return None, None, "id_type_invalid" if "type" in problem.code else "id_number_invalid"
    return f"doc:{document.type.value}", document.number, None


def clean_rows(rows: pd.DataFrame, blind: Callable[[str], str] | None = None) -> CleanRows:
    """Check each row; derive the matching keys.

    ``blind`` turns ``"doc:01:<number>"`` into the document's blind index (the same as
    ``Identifier.blind_index``), so documents are compared without being unsealed on the index side;
    without it (benchmarks) the key is the text itself. Duplicate MRNs: the first row wins.
    """
    good: list[tuple] = []
    extra: list[tuple] = []
    rejects: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for line, mrn, name, sex, birth, phone, id_type, id_number, address, region in rows.itertuples(index=False):
        reasons = []
        mrn, reason = _clean_mrn(mrn)
        if reason:
            reasons.append(reason)
        elif mrn in seen:
            reasons.append("mrn_duplicate")
        name = normalise_name(name) if name else ""
        sex_code = _SEX.get(sex.strip().lower(), None) if sex.strip() else "0"
        if sex_code is None:
            reasons.append("sex_invalid")
        birth_iso, reason = _clean_birth(birth)
        reasons += [reason] if reason else []
        phone_digits, reason = _clean_phone(phone)
        reasons += [reason] if reason else []
        system, number, reason = _clean_document(id_type, id_number)
        reasons += [reason] if reason else []
        region = region.strip()
        if region and not _REGION.fullmatch(region):
            reasons.append("region_code_invalid")
        if not name and not number:
            reasons.append("nothing_to_match_on")
        if reasons:
            rejects.append((line, mrn, " ".join(reasons)))
            continue
        seen.add(mrn)
        id_key = None
        if number:
            id_key = blind(f"{system}:{number}") if blind else f"{system}:{number}"
        good.append(frame_row(f"r{line}", name, sex_code, birth_iso, phone_digits,
                              normalise_address(address) or None, region or None, id_key))
        extra.append((line, mrn, system, number, sex_code))
    frame = pd.DataFrame(good, columns=list(FRAME_COLUMNS), dtype=object)
    info = pd.DataFrame(extra, columns=["line", "mrn", "id_system", "id_number", "sex_code"], dtype=object)
    return CleanRows(frame=pd.concat([frame, info], axis=1), rejects=rejects)


# -- the Splink model -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Thresholds:
    """Grades by posterior match probability; ``margin`` (match weight) is how far a certain best
    candidate must stand above the runner-up, else the pair goes to review."""

    certain: float = 0.99
    probable: float = 0.90
    possible: float = 0.50
    margin: float = 5.0


COMPARED_FIELDS = ("name", "birth_date", "sex", "phone", "address", "region_code", "id_key")


def comparisons() -> list:
    """Per field, the agreement levels from most to least alike (Splink builds the SQL per backend)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

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
            "region_code",
            cll.ExactMatchLevel("region_code"),
            cll.CustomLevel("substr(region_code_l, 1, 4) = substr(region_code_r, 1, 4)", "same city"),
        ), output_column_name="region_code"),
        cl.CustomComparison(levels("id_key", cll.ExactMatchLevel("id_key").configure(
            label_for_charts="same document")), output_column_name="id_key"),
    ]


def prediction_blocking_rules() -> list:
    """Which pairs get scored: any pair sharing one of these. Chosen so that every realistic error
    leaves at least one intact (a typo in the date: name + year; a new name: phone or document),
    while keeping blocks small enough for 1M x 1M (birth date alone would pair ~40M)."""
    from splink import block_on

    return [
        block_on("birth_date", "name_initial"),
        block_on("birth_date", "surname_py"),
        block_on("birth_date", "region_code"),
        block_on("name_py", "birth_year"),
        block_on("name_py", "region_code"),
        block_on("phone"),
        block_on("id_key"),
    ]


def model_settings() -> Any:
    from splink import SettingsCreator

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
    import logging

    from splink import Linker

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


def _copy_parameters(source: Any, target: Any) -> None:
    """The trained prior, m and u onto the same model built in another SQL dialect."""
    target._probability_two_random_records_match = source._probability_two_random_records_match
    for mine, theirs in zip(source.comparisons, target.comparisons, strict=True):
        for level, other in zip(mine.comparison_levels, theirs.comparison_levels, strict=True):
            if level.is_null_level:
                continue
            other.m_probability = level.m_probability
            other.u_probability = level.u_probability


def _predict(linker: Any, threshold: float) -> tuple[pd.DataFrame, dict | None]:
    predictions = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    pairs = _pairs(linker, predictions)
    histogram = linker.visualisations.match_weights_histogram(predictions).chart_dict if len(pairs) else None
    return pairs, histogram


def _train_m(linker: Any, em_pairs: float | None) -> list[str]:
    """m by EM, blocked on birth date (trains the name, phone... levels) then on name pinyin (trains
    the birth date levels); blocked on phone if one of them fails. On small lists a level seen
    only among non-matches can drive an m to 0, which Splink refuses: that session is undone (its
    partial state restored) and noted in the report."""
    import copy

    from splink import block_on

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


def _estimate_prior(linker: Any, index: pd.DataFrame, records: pd.DataFrame) -> float:
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

    def __enter__(self) -> Any:
        if self.backend == "duckdb":
            import duckdb
            from splink import DuckDBAPI

            connection = duckdb.connect()
            spill = self.workdir / "duckdb"
            spill.mkdir(parents=True, exist_ok=True)
            connection.execute(f"SET temp_directory = '{spill}'")
            connection.execute("SET preserve_insertion_order = false")
            self._close = connection.close
            return DuckDBAPI(connection=connection)
        spark = spark_session(self.workdir, partitions=self.partitions)
        from splink.backends.spark import SparkAPI

        self._close = spark.stop
        # Small jobs keep intermediate tables in memory (persist); large ones write them as Parquet
        # into the job's temporary directory, which is deleted afterwards.
        return SparkAPI(spark_session=spark, num_partitions_on_repartition=self.partitions,
                        break_lineage_method="persist" if self.rows < 2_000_000 else "parquet")

    def __exit__(self, *exc: object) -> None:
        self._close()


def spark_session(workdir: Path, partitions: int = 4) -> Any:
    """A local Spark (two cores) with Splink's similarity functions; every spill file in ``workdir``."""
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

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


def _pairs(linker: Any, predictions: Any) -> pd.DataFrame:
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


def _comparison_json(linker: Any, frame: pd.DataFrame) -> list[str]:
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


# -- decisions ------------------------------------------------------------------------------------

GRADE_ORDER = {"certain": 0, "probable": 1, "possible": 2}


def document_hits(index: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """(record_id, person_id) pairs holding the same document: a link without scoring."""
    left = records.loc[records["id_key"].notna(), ["unique_id", "id_key"]]
    right = index.loc[index["id_key"].notna(), ["unique_id", "id_key"]].drop_duplicates("id_key", keep=False)
    hits = left.merge(right, on="id_key", suffixes=("_record", "_person"))
    return pd.DataFrame({"record_id": hits["unique_id_record"].astype(str),
                         "person_id": hits["unique_id_person"].astype(str)})


def decide(pairs: pd.DataFrame, documents: pd.DataFrame, thresholds: Thresholds = Thresholds(),
           *, review_candidates: int = 3) -> pd.DataFrame:
    """One row per (record, candidate) that is acted on: ``grade`` certain (``reason`` document or
    model) or probable/possible (up to ``review_candidates`` per record, best first). Records that
    appear nowhere are unmatched."""
    columns = ["record_id", "person_id", "match_weight", "match_probability", "comparison", "grade", "reason"]
    doc = documents.drop_duplicates("record_id").assign(
        match_weight=float("inf"), match_probability=1.0, comparison="{}", grade="certain", reason="document")
    rest = pairs[~pairs["record_id"].isin(doc["record_id"])]
    rest = rest[rest["match_probability"] >= thresholds.possible]
    rest = rest.sort_values(["record_id", "match_weight"], ascending=[True, False], kind="stable")
    rank = rest.groupby("record_id", sort=False).cumcount()
    best = rest[rank == 0].set_index("record_id")
    runner_up = rest[rank == 1].set_index("record_id")["match_weight"].reindex(best.index)
    close = runner_up.notna() & (runner_up > best["match_weight"] - thresholds.margin)
    probability = best["match_probability"]
    certain = (probability >= thresholds.certain) & ~close
    certain_ids = set(best.index[certain])
    linked = best[certain].reset_index().assign(grade="certain", reason="model")

    queued = rest[(~rest["record_id"].isin(certain_ids)) & (rank < review_candidates)].copy()
    queued["grade"] = "possible"
    queued.loc[queued["match_probability"] >= thresholds.probable, "grade"] = "probable"
    queued["reason"] = "model"
    # A certain-looking best candidate with a close runner-up is ambiguous: both go to review as probable.
    ambiguous = set(best.index[(probability >= thresholds.certain) & close])
    queued.loc[queued["record_id"].isin(ambiguous) & (queued["match_probability"] >= thresholds.certain),
               "reason"] = "ambiguous"
    return pd.concat([doc[columns], linked[columns], queued[columns]], ignore_index=True)


def accuracy(decisions: pd.DataFrame, truth: set[tuple[str, str]], grades: tuple[str, ...] = ("certain",)) -> dict:
    """Precision, recall and F1 of the links of these grades against true (record, person) pairs."""
    chosen = decisions[decisions["grade"].isin(grades)]
    if "certain" not in grades or len(grades) > 1:
        chosen = chosen.drop_duplicates("record_id")  # the best candidate of each record
    found = set(zip(chosen["record_id"], chosen["person_id"]))
    true_positive = len(found & truth)
    precision = true_positive / len(found) if found else 1.0
    recall = true_positive / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "links": len(found), "true_links": true_positive}


def deterministic_links(index: pd.DataFrame, records: pd.DataFrame) -> set[tuple[str, str]]:
    """The plain rule the model is compared with: same document number, else same name and birth
    date (only when exactly one person of the index has that name and date)."""
    links = set(zip(*document_hits(index, records).values.T)) if len(records) else set()
    done = {record for record, _ in links}
    keyed = index.dropna(subset=["name", "birth_date"]).drop_duplicates(["name", "birth_date"], keep=False)
    rest = records[~records["unique_id"].isin(done)].dropna(subset=["name", "birth_date"])
    hits = rest.merge(keyed, on=["name", "birth_date"], suffixes=("_record", "_person"))
    links |= set(zip(hits["unique_id_record"].astype(str), hits["unique_id_person"].astype(str)))
    return links


# -- the index side -------------------------------------------------------------------------------

_WORKER_VAULT: Any = None


def _init_worker(keys_dir: str) -> None:
    global _WORKER_VAULT
    from ..crypto import KeyStore
    from ..kit.context import Vault

    _WORKER_VAULT = Vault(KeyStore(Path(keys_dir)))


def _open_people(rows: list[tuple], vault: Any = None) -> list[tuple]:
    """Unseal a chunk of people and build their linkage rows. Runs in a worker process (or inline)."""
    from .service import seal_context

    vault = vault or _WORKER_VAULT
    out = []
    def open_(sealed: str | None, person_id: str, field_: str) -> str | None:
        return vault.open(sealed, seal_context(person_id, field_)) if sealed else None

    for person_id, name_s, birth_s, phone_s, address_s, sex, region, id_key in rows:
        name = open_(name_s, person_id, "name")
        address = open_(address_s, person_id, "address")
        out.append(frame_row(person_id, normalise_name(name) if name else None, sex,
                             open_(birth_s, person_id, "birth_date"), open_(phone_s, person_id, "phone"),
                             normalise_address(address) if address else None, region, id_key))
    return out


def _clean_chunk(rows: pd.DataFrame, vault: Any = None) -> CleanRows:
    vault = vault or _WORKER_VAULT
    return clean_rows(rows, blind=lambda key: vault.blind("identifier", key))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _pool(keys_dir: Path | None, workers: int) -> ProcessPoolExecutor:
    """Worker processes (spawned: no copy of the parent's database connections); with ``keys_dir``
    each opens the key store once, for unsealing and blind indexes."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    if keys_dir is None:
        return ProcessPoolExecutor(workers, mp_context=context)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(str(keys_dir),))


def _frame_rows(rows: list[tuple]) -> list[tuple]:
    """Linkage rows from demographics already in clear: ``(person_id, name, sex, birth_date, phone,
    address, region_code, id_key)``."""
    return [frame_row(pid, normalise_name(name) if name else None, sex, birth, phone,
                      normalise_address(address) if address else None, region, id_key)
            for pid, name, sex, birth, phone, address, region, id_key in rows]


def index_frame(rows: list[tuple], *, workers: int | None = None, chunk: int = 50_000) -> pd.DataFrame:
    """The index side from demographics in clear (benchmarks: an already-unsealed export), with
    the pinyin keys derived in worker processes like :func:`export_index` does."""
    workers = default_workers(len(rows)) if workers is None else workers
    if workers:
        with _pool(None, workers) as pool:
            built = [row for part in pool.map(_frame_rows, _chunks(rows, chunk)) for row in part]
    else:
        built = _frame_rows(rows)
    return pd.DataFrame(built, columns=list(FRAME_COLUMNS), dtype=object)


def default_workers(n: int) -> int:
    """Worker processes for unsealing/cleaning ``n`` rows: none for small jobs (start-up costs more)."""
    return 0 if n < 20_000 else max(os.cpu_count() or 1, 1)


def export_index(platform: Any, *, workers: int | None = None, chunk: int = 20_000,
                 progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """The active people of the index as a linkage frame (``unique_id`` = person id), plus
    ``card_id``. Personal fields are unsealed in memory only; documents stay blind indexes."""
    from sqlalchemy import select

    from ..cards import service as cards_service
    from .models import Person, PersonIdentifier

    with platform.db.session() as session:
        documents: dict[str, str] = {}
        for person_id, system, blind_index in session.execute(
            select(PersonIdentifier.person_id, PersonIdentifier.system, PersonIdentifier.blind_index)
            .where(PersonIdentifier.system.like("doc:%")).order_by(PersonIdentifier.system.desc())
        ):
            documents[person_id] = blind_index  # doc:01 comes last, so it wins
        cards = cards_service.card_ids_by_person(session)
        sealed = [
            (*row, documents.get(row[0]))
            for row in session.execute(
                select(Person.id, Person.name_sealed, Person.birth_date_sealed, Person.phone_sealed,
                       Person.address_sealed, Person.sex, Person.region_code)
                .where(Person.status == "active", Person.temporary.is_(False)).order_by(Person.id)
            )
        ]
    workers = default_workers(len(sealed)) if workers is None else workers
    opened: list[tuple] = []
    if workers:
        with _pool(platform.settings.keys_dir, workers) as pool:
            for part in pool.map(_open_people, _chunks(sealed, chunk)):
                opened.extend(part)
                if progress:
                    progress(len(opened), len(sealed))
    else:
        for part in _chunks(sealed, chunk):
            opened.extend(_open_people(part, platform.vault))
            if progress:
                progress(len(opened), len(sealed))
    frame = pd.DataFrame(opened, columns=list(FRAME_COLUMNS), dtype=object)
    frame["card_id"] = frame["unique_id"].map(cards)
    return frame


def clean_list(platform: Any, rows: pd.DataFrame, *, workers: int | None = None, chunk: int = 50_000) -> CleanRows:
    """:func:`clean_rows` with the platform's blind index, in worker processes for long lists.
    Duplicate MRNs across chunks are caught after the chunks come back."""
    workers = default_workers(len(rows)) if workers is None else workers
    if not workers:
        return _clean_chunk(rows, platform.vault)
    parts = [rows.iloc[start:start + chunk] for start in range(0, len(rows), chunk)]
    with _pool(platform.settings.keys_dir, workers) as pool:
        results = list(pool.map(_clean_chunk, parts))
    frame = pd.concat([r.frame for r in results], ignore_index=True)
    rejects = [reject for r in results for reject in r.rejects]
    duplicate = frame["mrn"].duplicated(keep="first")
    rejects += [(int(line), mrn, "mrn_duplicate") for line, mrn in frame.loc[duplicate, ["line", "mrn"]].values]
    return CleanRows(frame=frame[~duplicate].reset_index(drop=True), rejects=sorted(rejects))


# -- the job --------------------------------------------------------------------------------------

@dataclass
class LinkResult:
    job_id: str | None
    out_dir: Path
    records: int = 0
    rejected: int = 0
    linked: int = 0  # new links written (or that would be, in a dry run)
    already_linked: int = 0
    conflicts: int = 0  # the MRN already belongs to another person: left alone, listed in links.csv
    queued: int = 0  # review pairs added
    unmatched: int = 0
    index_size: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False


Progress = Callable[[str, int | None, int | None], None]


def link_file(platform: Any, path: Path, institution_id: str, *, backend: str = "duckdb", out: Path | None = None,
              dry_run: bool = False, thresholds: Thresholds = Thresholds(), workers: int | None = None,
              operator: str = "cli", progress: Progress | None = None) -> LinkResult:
    """Link a hospital's patient list to the index (see the module docstring). Raises
    :class:`LinkInputError` for a file that cannot be linked and ``NotFound`` for an unknown
    institution; bad rows never raise, they are rejected."""
    from ..kit import ids

    say = progress or (lambda _step, _done, _total: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    _require_institution(platform, institution_id)
    rows = read_patient_list(path)
    job_id = None if dry_run else ids.new_id()
    out_dir = Path(out) if out else platform.settings.data_dir / "mpi-links" / (job_id or f"dry-run-{ids.new_id()[:8]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if job_id:
        _start_job(platform, job_id, institution_id, path, backend, out_dir)
    try:
        say("reading the list", 0, len(rows))
        mark = time.perf_counter()
        cleaned = clean_list(platform, rows, workers=workers)
        records = cleaned.frame
        timings["read and check the list"] = time.perf_counter() - mark
        say("reading the list", len(rows), len(rows))

        mark = time.perf_counter()
        index = export_index(platform, workers=workers, progress=lambda done, total: say("opening the index", done, total))
        timings["open the index (unseal)"] = time.perf_counter() - mark

        result = LinkResult(job_id=job_id, out_dir=out_dir, records=len(records), rejected=len(cleaned.rejects),
                            index_size=len(index), dry_run=dry_run)
        with tempfile.TemporaryDirectory(prefix="ehc-link-") as workdir:
            decisions, scored = _score_and_decide(index, records, backend, Path(workdir), thresholds, say, timings)
        mark = time.perf_counter()
        say("writing links", None, None)
        outcome = _apply(platform, decisions, records, index, institution_id, job_id, operator, dry_run)
        timings["write links and reviews"] = time.perf_counter() - mark
        mark = time.perf_counter()
        write_outputs(out_dir, outcome, cleaned.rejects, records, index)
        result.linked, result.already_linked = outcome.new_links, outcome.already_linked
        result.conflicts, result.queued, result.unmatched = outcome.conflicts, outcome.queued, outcome.unmatched
        timings["write the outputs"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started
        result.timings = timings
        write_report(out_dir / "report.html", result, scored, thresholds, backend, Path(path).name)
    except BaseException as exc:
        if job_id:
            _finish_job(platform, job_id, None, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if job_id:
        _finish_job(platform, job_id, result)
    return result


def _score_and_decide(index: pd.DataFrame, records: pd.DataFrame, backend: str, workdir: Path,
                      thresholds: Thresholds, say: Progress, timings: dict) -> tuple[pd.DataFrame, Scored]:
    if records.empty or index.empty:
        empty = pd.DataFrame(columns=["record_id", "person_id", "match_weight", "match_probability", "comparison"])
        return decide(empty, document_hits(index, records) if len(index) and len(records) else empty), Scored(empty)
    say(f"training the model ({backend})", None, None)
    scored = score_pairs(index, records, backend=backend, workdir=workdir, threshold=thresholds.possible,
                         step=lambda name: say(f"{name} ({backend})", None, None))
    timings.update({f"splink: {k}": v for k, v in scored.timings.items()})
    return decide(scored.pairs, document_hits(index, records), thresholds), scored


def _require_institution(platform: Any, institution_id: str) -> None:
    from ..institutions.models import Institution
    from ..kit.errors import NotFound

    with platform.db.session() as session:
        if session.get(Institution, institution_id) is None:
            raise NotFound(f"No institution {institution_id!r}.", code="institution_not_found")


def _start_job(platform: Any, job_id: str, institution_id: str, path: Path, backend: str, out_dir: Path) -> None:
    from .models import LinkJob

    with platform.db.session() as session:
        session.add(LinkJob(id=job_id, institution_id=institution_id, file_name=Path(path).name[:255],
                            backend=backend, status="running", output_dir=str(out_dir)))


def _finish_job(platform: Any, job_id: str, result: LinkResult | None, *, error: str | None = None) -> None:
    from ..kit.clock import utcnow
    from .models import LinkJob

    with platform.db.session() as session:
        job = session.get(LinkJob, job_id)
        if job is None:
            return
        job.finished_at = utcnow()
        if result is None:
            job.status, job.error = "failed", error
            return
        job.status = "done"
        job.records, job.linked, job.queued, job.unmatched = (
            result.records, result.linked, result.queued, result.unmatched)


@dataclass
class _Outcome:
    links: list[dict] = field(default_factory=list)
    reviews: list[dict] = field(default_factory=list)
    unmatched_ids: list[str] = field(default_factory=list)
    new_links: int = 0
    already_linked: int = 0
    conflicts: int = 0
    queued: int = 0

    @property
    def unmatched(self) -> int:
        return len(self.unmatched_ids)


MRN_SYSTEM = "mrn:{institution}"
LINK_PURPOSE = "mpi.identifiers"  # the resident's access log: "Linked ... hospital ... numbers"


def mrn_identifier(institution_id: str, mrn: str) -> Any:
    from .service import Identifier

    return Identifier(MRN_SYSTEM.format(institution=institution_id), mrn)


def outcome_without_database(decisions: pd.DataFrame, records: pd.DataFrame) -> _Outcome:
    """What a dry run would report, decided from the scores alone (no MRN was linked before, no
    pair is waiting in the queue): for benchmarks and for lists linked away from the database."""
    outcome = _Outcome()
    certain = decisions[decisions["grade"] == "certain"].drop_duplicates("record_id")
    queued = decisions[(decisions["grade"] != "certain") & ~decisions["record_id"].isin(certain["record_id"])]
    outcome.links = [{"record_id": rid, "person_id": pid, "match_weight": w, "match_probability": p,
                      "reason": reason, "status": "linked"}
                     for rid, pid, w, p, reason in certain[["record_id", "person_id", "match_weight",
                                                            "match_probability", "reason"]].itertuples(index=False)]
    outcome.reviews = [{"record_id": rid, "person_id": pid, "match_weight": w, "match_probability": p, "grade": g,
                        "review_id": None}
                       for rid, pid, w, p, g in queued[["record_id", "person_id", "match_weight", "match_probability",
                                                        "grade"]].itertuples(index=False)]
    outcome.new_links, outcome.queued = len(outcome.links), len(outcome.reviews)
    acted = set(certain["record_id"]) | set(queued["record_id"])
    outcome.unmatched_ids = [rid for rid in records["unique_id"] if rid not in acted]
    return outcome


def _apply(platform: Any, decisions: pd.DataFrame, records: pd.DataFrame, index: pd.DataFrame, institution_id: str,
           job_id: str | None, operator: str, dry_run: bool) -> _Outcome:
    """Write the certain links and queue the rest, in one transaction.

    Idempotent: an MRN already held by the chosen person is counted as already linked, one held by
    another person is a conflict (left alone), and a (record, person) pair already open in the
    queue for this institution is not queued again.
    """
    from ..kit.codes import Channel
    from ..kit.context import Actor
    from . import review
    from .bulk import held_identifiers
    from .matching import Candidate, Record

    outcome = _Outcome()
    by_record = records.set_index("unique_id")
    actor = Actor(kind="system", channel=Channel.BATCH_IMPORT, id=operator, operator=operator,
                  institution_id=institution_id)
    certain = decisions[decisions["grade"] == "certain"].drop_duplicates("record_id")
    queued = decisions[(decisions["grade"] != "certain") & ~decisions["record_id"].isin(certain["record_id"])]
    with platform.db.session() as session:
        ctx = platform.ctx(session, actor)
        mrn_of = by_record["mrn"].to_dict()
        keys = {rid: mrn_identifier(institution_id, mrn_of[rid]).blind_index(ctx) for rid in by_record.index}
        holders = _holders(session, list(keys.values()), held_identifiers)
        linked_now: set[str] = set()
        for rid, person_id, weight, probability, reason in certain[
                ["record_id", "person_id", "match_weight", "match_probability", "reason"]].itertuples(index=False):
            status, holder = _link_one(ctx, holders.get(keys[rid]), person_id,
                                       mrn_identifier(institution_id, mrn_of[rid]), dry_run)
            outcome.new_links += status == "linked"
            outcome.already_linked += status == "already_linked"
            outcome.conflicts += status == "conflict"
            linked_now.add(rid)
            outcome.links.append({"record_id": rid, "person_id": holder, "match_weight": weight,
                                  "match_probability": probability, "reason": reason, "status": status})
        # Rows linked on an earlier run whose pair is no longer certain still count as linked.
        open_pairs = _open_batch_reviews(ctx, institution_id)
        for rid, group in queued.groupby("record_id", sort=False):
            if keys[rid] in holders:
                if rid not in linked_now:
                    outcome.already_linked += 1
                    outcome.links.append({"record_id": rid, "person_id": holders[keys[rid]], "match_weight": None,
                                          "match_probability": None, "reason": "earlier run", "status": "already_linked"})
                    linked_now.add(rid)
                continue
            row = by_record.loc[rid]
            record = _record_of(row, institution_id, Record)
            for person_id, weight, probability, comparison, grade, reason in group[
                    ["person_id", "match_weight", "match_probability", "comparison", "grade", "reason"]
            ].itertuples(index=False):
                review_id = None
                if (row["mrn"], person_id) in open_pairs:
                    review_id = open_pairs[(row["mrn"], person_id)]
                elif not dry_run:
                    candidate = Candidate(person_id=person_id, score=float(weight), probability=float(probability),
                                          grade=grade, comparison=json.loads(comparison) | {"reason": reason})
                    review_id = review.enqueue(ctx, candidate, source="batch", record=record,
                                               institution_id=institution_id, link_job_id=job_id).id
                    outcome.queued += 1
                else:
                    outcome.queued += 1
                outcome.reviews.append({"record_id": rid, "person_id": person_id, "match_weight": weight,
                                        "match_probability": probability, "grade": grade, "review_id": review_id})
        acted = linked_now | set(queued["record_id"])
        already = [rid for rid in by_record.index if rid not in acted and keys[rid] in holders]
        for rid in already:
            outcome.already_linked += 1
            outcome.links.append({"record_id": rid, "person_id": holders[keys[rid]], "match_weight": None,
                                  "match_probability": None, "reason": "earlier run", "status": "already_linked"})
        acted |= set(already)
        outcome.unmatched_ids = [rid for rid in by_record.index if rid not in acted]
        if dry_run:
            session.rollback()
    return outcome


def _link_one(ctx: Any, holder_id: str | None, person_id: str, identifier: Any, dry_run: bool) -> tuple[str, str]:
    """Bind one MRN (``mpi.add_identifier``): ``(status, person id)`` with status linked,
    already_linked (held by this person, e.g. an earlier run) or conflict (held by someone else,
    left alone for a person to look at)."""
    from ..audit import service as audit
    from ..kit.errors import Conflict
    from . import service

    person = service.resolve(ctx, person_id)
    if holder_id is not None:
        holder = service.resolve(ctx, holder_id)
        return ("already_linked" if holder.id == person.id else "conflict"), holder.id
    if dry_run:
        return "linked", person.id
    try:
        service.add_identifier(ctx, person, identifier)
    except Conflict:  # bound a moment ago by someone else (a desk scan, the API)
        holder = service.find_by_identifier(ctx, identifier)
        return "conflict", holder.id if holder else person.id
    audit.record_access(ctx, person.id, "change", LINK_PURPOSE)
    return "linked", person.id


def _holders(session: Any, blind_indexes: list[str], held_identifiers: Callable) -> dict[str, str]:
    """blind index -> person id, for the MRNs already linked (earlier runs, the API, desk scans)."""
    from sqlalchemy import bindparam, select

    from .models import PersonIdentifier

    held = held_identifiers(session.connection(), blind_indexes)
    if not held:
        return {}
    query = select(PersonIdentifier.blind_index, PersonIdentifier.person_id).where(
        PersonIdentifier.blind_index.in_(bindparam("values", expanding=True)))
    found: dict[str, str] = {}
    values = list(held)
    for start in range(0, len(values), 500):
        found.update(session.execute(query, {"values": values[start:start + 500]}).all())
    return found


def _open_batch_reviews(ctx: Any, institution_id: str) -> dict[tuple[str, str], int]:
    """(MRN, person id) -> review id of the pairs already waiting from earlier batch runs."""
    from sqlalchemy import select

    from .models import MatchReview

    system = MRN_SYSTEM.format(institution=institution_id)
    found: dict[tuple[str, str], int] = {}
    for review_id, person_id, sealed in ctx.session.execute(
        select(MatchReview.id, MatchReview.right_person_id, MatchReview.record_sealed).where(
            MatchReview.source == "batch", MatchReview.institution_id == institution_id,
            MatchReview.status == "open", MatchReview.record_sealed.is_not(None))
    ):
        record = json.loads(ctx.vault.open(sealed, f"mpi_reviews:{review_id}:record"))
        for id_system, value in record.get("identifiers") or []:
            if id_system == system:
                found[(value, person_id)] = review_id
    return found


def _record_of(row: pd.Series, institution_id: str, record_type: type) -> Any:
    from .service import Identifier

    def value(name: str) -> Any:
        item = row[name]
        return None if item is None or (isinstance(item, float) and math.isnan(item)) else item

    document = Identifier(row["id_system"], row["id_number"]) if value("id_number") else None
    return record_type(
        name=value("name"), sex=value("sex_code"),
        birth_date=date.fromisoformat(row["birth_date"]) if value("birth_date") else None,
        phone=value("phone"), address=value("address"), region_code=value("region_code"),
        document=document, identifiers=(mrn_identifier(institution_id, row["mrn"]),),
    )


# -- outputs --------------------------------------------------------------------------------------

def _mask_name(name: Any) -> str:
    from ..identity.contact import mask_name

    return mask_name(name) if isinstance(name, str) and name else ""


def _mask_phone(phone: Any) -> str:
    from ..identity.contact import mask_phone

    return mask_phone(phone) if isinstance(phone, str) and phone else ""


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _number(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value))):
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{float(value):.{digits}f}"


def write_outputs(out_dir: Path, outcome: _Outcome, rejects: list, records: pd.DataFrame, index: pd.DataFrame) -> None:
    """links.csv (MRN -> card id, else person id), review.csv (both sides masked), unmatched.csv,
    rejects.csv (line, MRN, reason codes; never the row's personal data)."""
    mrn_of = dict(zip(records["unique_id"], records["mrn"]))
    card_of = dict(zip(index["unique_id"], index["card_id"])) if "card_id" in index else {}

    def ref(person_id: str) -> tuple[str, str]:
        card = card_of.get(person_id)
        return (card, "card") if isinstance(card, str) else (person_id, "person")

    _write_csv(out_dir / "links.csv",
               ["mrn", "person_ref", "ref_kind", "match_weight", "match_probability", "reason", "status"],
               [[mrn_of[link["record_id"]], *ref(link["person_id"]), _number(link["match_weight"], 2),
                 _number(link["match_probability"], 6), link["reason"], link["status"]] for link in outcome.links])
    shown = ["name", "birth_date", "phone", "sex"]
    mine = records.set_index("unique_id")[shown].reindex(list({item["record_id"]: 0 for item in outcome.reviews}))
    theirs = index.set_index("unique_id")[shown].reindex(list({item["person_id"]: 0 for item in outcome.reviews}))

    def side(frame: pd.DataFrame, key: str) -> list[str]:
        name, birth, phone, sex = frame.loc[key].tolist()
        birth = birth if isinstance(birth, str) else ""
        return [_mask_name(name), birth[:4], _mask_phone(phone), sex if isinstance(sex, str) else ""]

    review_rows = [[item["review_id"] or "", mrn_of[item["record_id"]], item["grade"], _number(item["match_weight"], 2),
                    _number(item["match_probability"], 6), *ref(item["person_id"]),
                    *side(mine, item["record_id"]), *side(theirs, item["person_id"])] for item in outcome.reviews]
    _write_csv(out_dir / "review.csv",
               ["review_id", "mrn", "grade", "match_weight", "match_probability", "person_ref", "ref_kind",
                "list_name", "list_birth_year", "list_phone", "list_sex",
                "index_name", "index_birth_year", "index_phone", "index_sex"], review_rows)
    _write_csv(out_dir / "unmatched.csv", ["mrn", "reason"],
               [[mrn_of[rid], "no candidate above the possible threshold"] for rid in outcome.unmatched_ids])
    _write_csv(out_dir / "rejects.csv", ["line", "mrn", "reasons"], [list(r) for r in rejects])


def write_report(path: Path, result: LinkResult, scored: Scored, thresholds: Thresholds, backend: str,
                 file_name: str) -> None:
    """One self-contained HTML page: counts, timings, thresholds and Splink's charts (Vega-Lite
    specs, drawn by the Vega libraries Splink ships, inlined so the page works offline)."""
    from splink.internals.html_utils import chart_html

    def row(label: str, value: Any) -> str:
        return f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"

    counts = [
        ("file", file_name), ("backend", backend), ("job", result.job_id or "dry run (nothing written)"),
        ("people in the index", f"{result.index_size:,}"), ("rows checked", f"{result.records + result.rejected:,}"),
        ("rejected rows", f"{result.rejected:,}"), ("new links", f"{result.linked:,}"),
        ("already linked", f"{result.already_linked:,}"), ("conflicts (MRN held by another person)", f"{result.conflicts:,}"),
        ("review pairs queued", f"{result.queued:,}"), ("unmatched", f"{result.unmatched:,}"),
        ("prior (chance a random pair matches)", f"{scored.prior:.3g}" if scored.prior else "-"),
        ("thresholds", (f"certain >= {thresholds.certain}, probable >= {thresholds.probable}, "
                        f"possible >= {thresholds.possible}; runner-up margin {thresholds.margin} (match weight)")),
    ]
    timing_rows = "".join(row(name, f"{seconds:.2f} s") for name, seconds in result.timings.items())
    chart_parts = []
    for title, spec in scored.charts.items():
        chart_parts.append(f"<h2>{html.escape(title)}</h2>" + chart_html(spec, inline=True))
        chart_parts.append(f'<script type="application/json" class="vega-lite-spec">{json.dumps(spec, default=float)}</script>')
    body = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Batch linkage report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>Batch linkage report</h1><table>{''.join(row(k, v) for k, v in counts)}</table>"
        f"<h2>Timings</h2><table>{timing_rows}</table>"
        + ("".join(chart_parts) if chart_parts else "<p>No model was trained (empty list or index).</p>")
        + "</body></html>"
    )
    path.write_text(body, encoding="utf-8")

