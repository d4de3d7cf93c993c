"""Batch linkage at scale, end to end from the database: a 1M-row patient list against a 1M-person
index on PostgreSQL (issue 11: from the database to links written and review pairs queued in under
3 minutes on this machine).

What is timed (one figure, phase by phase as ``ehc mpi link`` runs them: ``mpi.linkage.job.link_file``):

1. reading the list (CSV, 1M rows: ``mrn, name, sex, birth_date, phone, id_number, address,
   region_code``) and checking every row (documents parsed and blind-indexed, pinyin keys), in
   worker processes;
2. opening the index: the active people read from PostgreSQL, their sealed name, birth date, phone
   and address opened (SM4-GCM) and turned into linkage rows, in worker processes;
3. Splink: prior, u by random sampling, m by EM, prediction over every blocked pair (DuckDB);
4. the shared evidence rules and grading (document short-circuit, certain / probable / possible);
5. the writes: the certain MRNs bound in bulk (COPY), the review pairs queued (batched), one audit
   event per linked person, in one transaction;
6. clustering the list (duplicates within it), writing links.csv, review.csv, unmatched.csv,
   rejects.csv and report.html.

CPU is reported for the process, its worker processes and the PostgreSQL backends.

The data: the shared index of ``bench/mpi_index.py`` (``ehc.mpi.synth.stream`` people written with
the bulk path, reused while complete; the same database as ``bench_mpi_realtime``); the list is a
corrupted copy (homophones, similar shapes, nicknames, swapped dates, typos, moves, ~60% without ID
number) of the last 800k people of the index plus 200k people who are not in it. What a previous run
wrote (the list's MRNs, review pairs, link jobs) is removed before each run. Quick: 50k x 50k.

The write step is also measured alone (``--writes [LINKS] [sqlite]``) on a fresh database.

Run alone: ``.venv/bin/python bench/bench_mpi_batch.py [--quick] [--end-to-end [--workers N]]``; or ``bench/run.py
mpi_batch``. ``--workers``: worker processes of the job's parallel steps (``ehc mpi link --workers``;
default one per core).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OUT = ROOT / "bench" / "out" / "mpi_batch"
GOAL_SECONDS = 180.0
SEED = 20262
PG_ADMIN_URL = os.environ.get("EHC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

import mpi_index  # noqa: E402 - the shared 1M index (bench/mpi_index.py), after the path is set


def _vault(keys_dir: Path):
    from ehc.crypto import KeyStore
    from ehc.kit.context import Vault

    if not KeyStore(keys_dir).exists:
        KeyStore.init(keys_dir)
    return Vault(KeyStore(keys_dir))


def cpu(before, after) -> float:
    """CPU seconds (user + system) between two ``resource.getrusage`` readings."""
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def end_to_end(quick: bool, workers: int | None = None) -> dict:
    """``ehc mpi link`` as a hospital runs it (``mpi.linkage.job.link_file``), from the list file and the
    sealed index in PostgreSQL to links written and review pairs queued, on the shared index of
    ``bench/mpi_index.py``; what an earlier run wrote is removed first."""
    import pandas as pd

    from ehc.mpi.linkage.job import link_file

    built = mpi_index.ensure(quick)
    mpi_index.reset_links(built)
    platform = mpi_index.platform(built)
    out = OUT / ("quick" if quick else "full") / "outputs"
    load = os.getloadavg()[0]
    self_cpu, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    server = mpi_index.database_cpu(built.database)
    marks: list[tuple[str, float]] = []  # (step, CPU of this process and its workers so far) at each step's start

    def step(name: str, _done: int | None, _total: int | None) -> None:
        if not marks or marks[-1][0] != name:
            now_self, now_children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            marks.append((name, cpu(self_cpu, now_self) + cpu(children, now_children)))

    try:
        result = link_file(platform, built.work / "list.csv", mpi_index.INSTITUTION, out=out, operator="bench",
                           progress=step, workers=workers)
        server = mpi_index.database_cpu(built.database) - server  # before the pool's connections close
    finally:
        platform.db.dispose()
    after_self, after_children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    marks.append(("end", cpu(self_cpu, after_self) + cpu(children, after_children)))
    step_cpu = {name: later - at for (name, at), (_, later) in zip(marks, marks[1:])}

    links = pd.read_csv(out / "links.csv", dtype=str)
    links = links[links["status"] == "linked"]
    truth = pd.read_csv(built.work / "truth.csv", dtype=str)
    true_pairs = set(zip(truth["mrn"], truth["person_id"]))
    right = sum(pair in true_pairs for pair in zip(links["mrn"], links["person_ref"]))
    return {"built": built, "result": result, "load": (load, os.getloadavg()[0]),
            "step_cpu": step_cpu, "cpu": cpu(self_cpu, after_self), "workers_cpu": cpu(children, after_children), "server_cpu": server,
            "precision": right / max(len(links), 1), "recall": right / max(len(true_pairs), 1)}


def end_to_end_row(measured: dict) -> dict:
    built, result = measured["built"], measured["result"]
    timings = result.timings
    steps = "; ".join(f"{k} {v:.1f} s" for k, v in timings.items() if k != "total")
    index_note = (f"index built in this run ({built.seconds / 60:.1f} min, bench/mpi_index.py, bulk path)"
                  if built.seconds is not None else "index built in an earlier run (bench/mpi_index.py, bulk path)")
    return {
        "figure": (f"Batch linkage end to end, {result.records + result.rejected:,}-row list x "
                   f"{result.index_size:,}-person index on PostgreSQL (from the database to links written)"),
        "value": timings["total"], "unit": "s",
        "reference": None, "reference_value": None, "ratio": None,
        "goal": f"< {GOAL_SECONDS:.0f} s", "met": timings["total"] < GOAL_SECONDS,
        "notes": (f"mpi.linkage.job.link_file as `ehc mpi link` runs it (DuckDB): {steps}; {result.linked:,} "
                  f"certain links written, {result.queued:,} review pairs queued, {result.unmatched:,} unmatched, "
                  f"{result.rejected:,} rejected, {result.clusters:,} clusters within the list; certain links "
                  f"precision {measured['precision']:.4f}, recall {measured['recall']:.4f}; CPU: this process "
                  f"{measured['cpu']:.0f} s, worker processes {measured['workers_cpu']:.0f} s, PostgreSQL backends "
                  f"{measured['server_cpu']:.0f} s; CPU of this process and its workers by step ("
                  + ", ".join(f"{k} {v:.0f} s" for k, v in measured["step_cpu"].items()) + f"); {index_note}; load average {measured['load'][0]:.1f} -> "
                  f"{measured['load'][1]:.1f} on {len(os.sched_getaffinity(0))} cores shared with other work"),
    }


# -- the write step: links and review pairs into the database -----------------------------------------

WRITES_DATABASE = "ehc_bench_mpi_apply"
REVIEW_SHARE = 0.03  # review pairs per certain link (the 1M run above queues 22,622 for 766,454 links)


def _writes_platform(dialect: str, work: Path, n_people: int):
    """A fresh database (PostgreSQL ``ehc_bench_mpi_apply``, or a SQLite file) holding ``n_people``
    people written with the importer's bulk writer; returns (platform, people as (person id, synth row))."""
    from sqlalchemy import create_engine, text

    from ehc.config import Settings
    from ehc.crypto import KeyStore
    from ehc.db import Database
    from ehc.kit import ids
    from ehc.kit.clock import utcnow
    from ehc.kit.context import Vault
    from ehc.migrate import upgrade
    from ehc.mpi import bulk, synth
    from ehc.mpi.service import Demographics, Identifier
    from ehc.platform import Platform

    keys_dir = work / "keys"
    _vault(keys_dir)
    if dialect == "postgresql":
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{WRITES_DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{WRITES_DATABASE}"'))
        admin.dispose()
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{WRITES_DATABASE}"
    else:
        (work / "writes.sqlite").unlink(missing_ok=True)
        url = f"sqlite:///{work / 'writes.sqlite'}"
    upgrade(url)
    keys = KeyStore(keys_dir)
    platform = Platform(settings=Settings(data_dir=work, database_url=url, keys_dir=keys_dir), db=Database(url),
                        keys=keys, vault=Vault(keys))
    people, builder = [], bulk.PersonBatchBuilder(platform.vault, copy=dialect == "postgresql")
    for key, (row, query) in enumerate(synth.stream(n_people, SEED, query_every=1)):
        details = Demographics(name=row["name"], sex=row["sex"], birth_date=date.fromisoformat(row["birth_date"]),
                               phone=row["phone"], address=row["address"], region_code=row["region_code"])
        person_id = ids.new_person_id()
        builder.add(key, person_id, details, Identifier("mrn:bench-origin", f"O{key:08d}"))
        people.append((person_id, query))
        if (key + 1) % 10_000 == 0 or key + 1 == n_people:
            with platform.db.engine.begin() as conn:
                bulk.create_persons(conn, builder.build(), utcnow())
            builder = bulk.PersonBatchBuilder(platform.vault, copy=dialect == "postgresql")
    if dialect == "postgresql":
        with platform.db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return platform, people


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds a PostgreSQL backend has used, from /proc; 0 when unknown or unreadable."""
    return mpi_index.backend_cpu(pid) if pid is not None else 0.0


def writes(n_links: int, dialect: str = "postgresql") -> dict:
    """The write step alone (``apply_decisions``): ``n_links`` certain links to as many people,
    ``REVIEW_SHARE`` of that in review pairs, against an index of ``n_links`` people; then the same
    decisions again (the idempotent re-run: everything found already linked or queued)."""
    import json

    import pandas as pd

    from ehc.mpi.linkage import apply as linkage_apply

    work = OUT / f"writes-{dialect}"
    work.mkdir(parents=True, exist_ok=True)
    mark = time.perf_counter()
    platform, people = _writes_platform(dialect, work, n_links)
    built = time.perf_counter() - mark
    n_reviews = int(n_links * REVIEW_SHARE)
    records, decisions = [], []
    comparison = json.dumps({"name": {"level": 3, "weight": 6.1}, "birth_date": {"level": 4, "weight": 7.2}})
    for n, (person_id, query) in enumerate(people):
        records.append({"unique_id": f"r{n}", "mrn": f"M{n:08d}", "name": query["name"], "sex_code": query["sex"],
                        "birth_date": query["birth_date"], "phone": query["phone"], "address": query["address"],
                        "region_code": query["region_code"], "id_system": "doc:01" if query["id_number"] else None,
                        "id_number": query["id_number"]})
        decisions.append((f"r{n}", person_id, 21.0, 0.99999, comparison, "certain", "model"))
    for n in range(n_reviews):  # list rows beyond the linked ones, each queued against a person
        person_id, query = people[n]
        records.append({**records[n], "unique_id": f"q{n}", "mrn": f"Q{n:08d}"})
        decisions.append((f"q{n}", person_id, 9.0, 0.97, comparison, "probable", "model"))
    records_frame = pd.DataFrame(records, dtype=object)
    decisions_frame = pd.DataFrame(decisions, columns=["record_id", "person_id", "match_weight", "match_probability",
                                                       "comparison", "grade", "reason"])
    backend = None
    if dialect == "postgresql":
        with platform.db.engine.connect() as conn:  # the pooled connection the step will use next
            backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    runs = []
    for _ in range(2):
        load = os.getloadavg()[0]
        cpu, server, wall = time.process_time(), _backend_cpu(backend), time.perf_counter()
        outcome = linkage_apply.apply_decisions(platform, decisions_frame, records_frame, pd.DataFrame(),
                                                "bench-hospital", None, "bench", False)
        runs.append({"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                     "server_cpu": _backend_cpu(backend) - server, "load": (load, os.getloadavg()[0]),
                     "linked": outcome.new_links, "queued": outcome.queued, "already": outcome.already_linked})
    platform.db.dispose()
    assert runs[0]["linked"] == n_links and runs[0]["queued"] == n_reviews, runs[0]
    assert runs[1]["linked"] == 0 and runs[1]["queued"] == 0 and runs[1]["already"] == n_links, runs[1]
    return {"dialect": dialect, "links": n_links, "reviews": n_reviews, "built": built, "first": runs[0],
            "again": runs[1], "server_measured": backend is not None}


def writes_row(measured: dict) -> dict:
    first, again = measured["first"], measured["again"]
    rows = measured["links"] + measured["reviews"]
    server = (f", PostgreSQL backend {first['server_cpu'] / rows * 1e6:,.0f} µs CPU a row"
              if measured["server_measured"] else "")
    return {
        "figure": (f"Batch linkage write step ({measured['dialect']}): {measured['links']:,} links + "
                   f"{measured['reviews']:,} review pairs written"),
        "value": rows / first["seconds"], "unit": "rows/s",
        "reference": "the one-by-one writes measured in issue 11 (13,829 links + 222 reviews in 55 s)",
        "reference_value": 250, "ratio": rows / first["seconds"] / 250,
        "goal": None, "met": None,
        "notes": (f"apply_decisions from the decisions to the commit, {first['seconds']:.1f} s: MRN identifiers "
                  f"sealed + blind-indexed and bulk inserted, review records sealed and queued, one chained audit "
                  f"event per linked person; {measured['links'] / first['seconds']:,.0f} links/s with the reviews in "
                  f"the same time; client {first['cpu'] / rows * 1e6:,.0f} µs CPU a row{server}; re-run of the same "
                  f"decisions (all already linked / queued, nothing written) {again['seconds']:.1f} s, client "
                  f"{again['cpu']:.1f} s CPU; index of {measured['links']:,} people written with the importer's bulk "
                  f"writer beforehand ({measured['built']:.0f} s, not timed); load average "
                  f"{first['load'][0]:.1f} -> {first['load'][1]:.1f} on {len(os.sched_getaffinity(0))} cores shared "
                  "with other work"),
    }


def main(quick: bool = False) -> list[dict]:
    return [end_to_end_row(end_to_end(quick)), writes_row(writes(10_000 if quick else 100_000))]


if __name__ == "__main__":
    if "--end-to-end" in sys.argv:  # the run from the database alone
        chosen = sys.argv[sys.argv.index("--workers") + 1] if "--workers" in sys.argv else None
        print(end_to_end_row(end_to_end(quick="--quick" in sys.argv, workers=None if chosen is None else int(chosen))))
    elif "--writes" in sys.argv:  # the write step alone: --writes [LINKS] [sqlite]
        extra = sys.argv[sys.argv.index("--writes") + 1:]
        count = int(extra[0]) if extra and extra[0].isdigit() else 100_000
        print(writes_row(writes(count, "sqlite" if "sqlite" in extra else "postgresql")))
    else:
        for item in main(quick="--quick" in sys.argv):
            print(item)
