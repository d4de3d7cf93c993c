"""The large master index the MPI benchmarks share (``bench_mpi_realtime``, ``bench_mpi_batch``):
built once into a PostgreSQL database through the bulk path and reused while it is complete.

One pass over ``ehc.mpi.synth.stream(n_index + n_list // 5, SEED, query_every=1)``:

- the first ``n_index`` people go into the index through the importer's bulk writer
  (``ehc.mpi.bulk``: sealing, blind indexes and the matcher's blocking keys in the same pass,
  ``COPY``), with their resident ID number (``doc:01``) or, without one, a legacy number;
- the list for batch linkage (``list.csv``, ``truth.csv`` = MRN -> person id) is the corrupted copy
  (homophones, similar shapes, nicknames, swapped dates, typos, moves, ~60% without ID number) of
  the last ``0.8 * n_list`` indexed people plus ``0.2 * n_list`` people not in the index;
- the real-time queries (``queries.json``) are the corrupted copies of every ``every``-th person.

The database name comes from ``EHC_BENCH_MPI_DB`` (default ``ehc_bench_mpi``; ``_quick`` appended for
quick runs), so several people sharing a PostgreSQL server each keep their own. The key store and
the files live in ``bench/out/mpi_index/<database>/``; ``complete.json`` is written last, after
``ANALYZE``, and a build is reused only when it matches the sizes asked and the database still holds
that many people. The batch bench writes links and review pairs into this database; it removes
them again (``reset_links``) before each run, so a run always starts from the bare index.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OUT = ROOT / "bench" / "out" / "mpi_index"
PG_ADMIN_URL = os.environ.get("EHC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SEED = 20263
BATCH = 5000
INSTITUTION = "bench-hospital"  # the institution the batch list comes from (MRN system mrn:bench-hospital)


@dataclass
class Built:
    database: str
    url: str
    work: Path  # keys/, list.csv, truth.csv, queries.json, complete.json
    people: int
    listed: int
    every: int
    seconds: float | None  # build time, None when reused

    @property
    def keys_dir(self) -> Path:
        return self.work / "keys"


def database_name(quick: bool) -> str:
    name = os.environ.get("EHC_BENCH_MPI_DB", "ehc_bench_mpi")
    return f"{name}_quick" if quick else name


def sizes(quick: bool) -> tuple[int, int, int]:
    """(index people, list rows, every-th person queried in real time)."""
    return (50_000, 50_000, 50) if quick else (1_000_000, 1_000_000, 1000)


def _url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"


def _admin(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _count_people(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM persons")).scalar_one()
    except Exception:  # noqa: BLE001 - missing database or tables: not built
        return -1
    finally:
        engine.dispose()


def platform(built: Built):
    from ehc.config import Settings
    from ehc.crypto import KeyStore
    from ehc.db import Database
    from ehc.kit.context import Vault
    from ehc.platform import Platform

    keys = KeyStore(built.keys_dir)
    settings = Settings(data_dir=built.work, database_url=built.url, keys_dir=built.keys_dir)
    return Platform(settings=settings, db=Database(built.url), keys=keys, vault=Vault(keys))


def ensure(quick: bool = False) -> Built:
    """The index of this size, built now unless a complete one is already there."""
    people, listed, every = sizes(quick)
    database = database_name(quick)
    work = OUT / database
    built = Built(database, _url(database), work, people, listed, every, None)
    marker = work / "complete.json"
    wanted = {"people": people, "listed": listed, "every": every, "seed": SEED}
    if (marker.exists() and json.loads(marker.read_text()) .get("sizes") == wanted
            and _count_people(built.url) == people):
        return built
    from ehc.crypto import KeyStore
    from ehc.migrate import upgrade

    marker.unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    if not KeyStore(built.keys_dir).exists:
        KeyStore.init(built.keys_dir)
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{database}"')
    upgrade(built.url)
    started = time.perf_counter()
    plat = platform(built)
    try:
        _write(plat, built)
        with plat.db.session() as session:
            from ehc.institutions.models import Institution

            session.add(Institution(id=INSTITUTION, uscc="12510000MB1234567X", name="Bench People's Hospital",
                                    kind="hospital", region_code="510104"))
        with plat.db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        plat.db.dispose()
    built.seconds = time.perf_counter() - started
    marker.write_text(json.dumps({"sizes": wanted, "seconds": built.seconds}))
    return built


def _write(plat, built: Built) -> None:
    from ehc.kit import ids
    from ehc.kit.clock import utcnow
    from ehc.mpi import bulk, synth
    from ehc.mpi.service import Demographics, Identifier

    n_new = built.listed // 5
    first_listed = built.people + n_new - built.listed + 1
    queries: list[dict] = []
    builder = bulk.PersonBatchBuilder(plat.vault, copy=True)
    with open(built.work / "list.csv", "w", newline="", encoding="utf-8") as listed, \
            open(built.work / "truth.csv", "w", newline="", encoding="utf-8") as truth:
        writer, truths = csv.writer(listed), csv.writer(truth)
        writer.writerow(["mrn", "name", "sex", "birth_date", "phone", "id_number", "address", "region_code"])
        truths.writerow(["mrn", "person_id"])
        for number, (row, query) in enumerate(synth.stream(built.people + n_new, SEED, query_every=1), start=1):
            person_id = None
            if number <= built.people:
                details = Demographics(name=row["name"], sex=row["sex"],
                                       birth_date=date.fromisoformat(row["birth_date"]), phone=row["phone"],
                                       address=row["address"], region_code=row["region_code"])
                identifier = (Identifier("doc:01", row["id_number"]) if row["id_number"]
                              else Identifier("mrn:bench", row["true_id"]))
                person_id = ids.new_person_id()
                builder.add(number, person_id, details, identifier)
                if number % built.every == 0:
                    queries.append({**query, "person_id": person_id, "document": row["id_number"]})
                if number % BATCH == 0:
                    _flush(plat, builder, bulk, utcnow())
                    builder = bulk.PersonBatchBuilder(plat.vault, copy=True)
            if number >= first_listed:
                mrn = f"M{number:08d}"
                writer.writerow([mrn, query["name"], query["sex"], query["birth_date"], query["phone"] or "",
                                 query["id_number"] or "", query["address"], query["region_code"]])
                if person_id:
                    truths.writerow([mrn, person_id])
    _flush(plat, builder, bulk, utcnow())
    (built.work / "queries.json").write_text(json.dumps(queries, ensure_ascii=False), encoding="utf-8")


def _flush(plat, builder, bulk, now) -> None:
    with plat.db.engine.begin() as conn:
        lost = bulk.create_persons(conn, builder.build(), now)
    assert not lost, f"{len(lost)} people lost their document in a generated index"


def backend_cpu(pid: int) -> float:
    """CPU seconds a process has used (user + system), from /proc; 0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def database_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL backends now connected to ``database`` (the server's process titles
    name the database; same machine only); backends that exit meanwhile are not counted."""
    total = 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title + " ":
            total += backend_cpu(int(cmdline.parent.name))
    return total


def reset_links(built: Built) -> None:
    """Remove what a batch run wrote (the list's MRNs, its review pairs, its jobs): the bare index again.
    The audit events of those runs stay (the trail is append-only)."""
    from sqlalchemy import create_engine

    engine = create_engine(built.url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM person_identifiers WHERE system = %s", (f"mrn:{INSTITUTION}",))
            conn.exec_driver_sql("DELETE FROM mpi_reviews WHERE institution_id = %s", (INSTITUTION,))
            conn.exec_driver_sql("DELETE FROM mpi_link_jobs WHERE institution_id = %s", (INSTITUTION,))
    finally:
        engine.dispose()


if __name__ == "__main__":
    done = ensure(quick="--quick" in sys.argv)
    print(done.database, done.people, "built in %.0f s" % done.seconds if done.seconds else "reused")
