"""Health records (issue 16): ingest rate through the signed FHIR door, and the resident's timeline and
``$everything`` for a resident with 5,000 records in a large store. PostgreSQL, in one process.

- Ingest: a realistic mix (conditions, observations, encounters, medication requests, a small PDF
  DocumentReference) posted to ``/fhir/{type}`` as a hospital system, each request signed in advance (so
  the client's own SM2 signing is not measured; the server verifies the signature, claims the nonce,
  validates with fhir.resources, resolves the MRN through the master index, seals and commits). The
  reference, in the same run: the same rows (already sealed) inserted plainly, one transaction per row.
- Reads: a store of 10M rows of other people, loaded with PostgreSQL COPY (secondary indexes dropped
  first and built after, as a bulk load does; every body a real SM4 seal of a realistic resource, one
  seal per kind reused for all background rows: they are never opened) plus 5,000 real records of one
  resident; timeline (newest 200, opened and titled) p50/p95,
  and ``$everything`` (every record opened and checked with the R4B model) median.

Run alone: ``.venv/bin/python bench/bench_records.py [--quick]``; or ``bench/run.py records``.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text

from ehc.app import create_app
from ehc.apps import service as apps
from ehc.apps.signing import sign
from ehc.config import Settings
from ehc.crypto import KeyStore, SM2PrivateKey
from ehc.db import Database
from ehc.institutions.models import Institution
from ehc.kit import dialect, ids
from ehc.kit.clock import utcnow
from ehc.kit.context import Actor, Vault
from ehc.migrate import upgrade
from ehc.mpi import service as mpi
from ehc.platform import Platform
from ehc.records import service as records
from ehc.records.models import RecordVersion

ADMIN_URL = os.environ.get("EHC_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_NAME = "ehc_bench_records"
INSTITUTION = "bench-hosp-01"
SID = "https://ehc.example/fhir/sid"
PDF = b"%PDF-1.4\n" + os.urandom(6000)
CHUNK = 200_000  # COPY rows per transaction


def _admin(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _mix(n: int, subject: dict) -> dict:
    day = (date(2026, 1, 1) + timedelta(days=n % 300)).isoformat()
    kind = n % 10
    if kind < 4:
        return {"resourceType": "Observation", "status": "final", "subject": subject, "effectiveDateTime": day,
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]},
                "valueQuantity": {"value": 110 + n % 40, "unit": "mmHg"}}
    if kind < 6:
        return {"resourceType": "Condition", "subject": subject, "recordedDate": day,
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": f"I1{n % 6}", "display": "Hypertension"}]}}
    if kind < 8:
        return {"resourceType": "Encounter", "status": "finished", "subject": subject, "period": {"start": day},
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}
    if kind < 9:
        return {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": subject,
                "authoredOn": day, "medicationCodeableConcept": {"text": f"Amlodipine 5 mg #{n}"}}
    return {"resourceType": "DocumentReference", "status": "current", "subject": subject, "date": day + "T08:00:00+08:00",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}]},
            "content": [{"attachment": {"contentType": "application/pdf", "data": base64.b64encode(PDF + str(n).encode()).decode()}}]}


def _platform(url: str, tmp: Path) -> Platform:
    keys = KeyStore(tmp / "keys")
    return Platform(settings=Settings(data_dir=tmp, database_url=url, keys_dir=tmp / "keys"), db=Database(url),
                    keys=keys, vault=Vault(keys))


def _ingest(platform: Platform, count: int) -> tuple[float, float]:
    """(signed publishes per second, plain inserts per second of the same rows)."""
    from fastapi.testclient import TestClient  # heavy: only the bench's HTTP part needs it

    key = SM2PrivateKey.generate()
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system("bench"))
        app = apps.create_app(ctx, name="bench HIS", institution_id=INSTITUTION)
        key_id = apps.add_key(ctx, app.id, key.public_key.to_pem().decode()).key_id
    run = ids.new_id()[:6]
    mixed = [_mix(n, {"identifier": {"system": f"{SID}/mrn/{INSTITUTION}", "value": f"B{run}-{n % 50}"}}) for n in range(count)]
    for n, resource in enumerate(mixed):  # each the hospital's own record (an identical body would be a retry)
        resource["identifier"] = [{"system": f"urn:bench:{INSTITUTION}", "value": f"{run}-{n}"}]
    bodies = [(f"/fhir/{r['resourceType']}", json.dumps(r).encode()) for r in mixed]
    signed = [(path, body, sign(key, method="POST", path=path, query="", body=body, app_id=app.id, key_id=key_id))
              for path, body in bodies]
    with TestClient(create_app(platform)) as client:
        began = time.perf_counter()
        for path, body, headers in signed:
            answer = client.post(path, content=body, headers={**headers, "Content-Type": "application/fhir+json"})
            assert answer.status_code == 201, answer.text
        signed_rate = count / (time.perf_counter() - began)
    with platform.db.session() as session:
        rows = session.execute(select(RecordVersion.__table__).order_by(RecordVersion.id.desc()).limit(count)).mappings().all()
    copies = [{**{k: v for k, v in row.items() if k != "id"}, "digest": ids.new_id() + ids.new_id() + "x" * 16,
               "resource_id": ids.new_id()} for row in rows]
    began = time.perf_counter()
    for copy in copies:
        with platform.db.engine.begin() as conn:
            conn.execute(insert(RecordVersion.__table__), [copy])
    plain_rate = count / (time.perf_counter() - began)
    return signed_rate, plain_rate


def _background_bodies(platform: Platform) -> list[tuple[str, str, int]]:
    """One realistic sealed body per kind for the background people: (type, sealed body, size). Each is a
    real SM4-GCM seal of a resource of the bench's mix (a document with a 1 KB attachment rather than the
    ingest's 6 KB, so 10M rows fit on the disk); the same seal is reused for every background row of its
    kind, so it would not open under those rows' own ids (the bench never opens them)."""
    bodies = []
    for n in range(10):
        resource = _mix(n, {"reference": "Patient/x"})
        if resource["resourceType"] == "DocumentReference":
            resource["content"][0]["attachment"]["data"] = base64.b64encode(PDF[:1024]).decode()
        kept = json.dumps({k: v for k, v in resource.items() if k != "subject"}, separators=(",", ":"))
        bodies.append((resource["resourceType"], platform.vault.seal(kept, records.body_context(f"F{n:023d}", 1)), len(kept)))
    return bodies


def _without_indexes(conn) -> list[str]:  # noqa: ANN001
    """Drop records_versions' secondary indexes and unique constraints (a bulk load builds them once,
    after the rows); answers the statements that put them back."""
    constraints = conn.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'records_versions'::regclass AND contype = 'u'")).all()
    indexes = conn.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'records_versions' "
        "AND indexname <> 'pk_records_versions' AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = 'records_versions'::regclass)")).all()
    for name, _ in constraints:
        conn.execute(text(f"ALTER TABLE records_versions DROP CONSTRAINT {name}"))
    for name, _ in indexes:
        conn.execute(text(f"DROP INDEX {name}"))
    return ([f"ALTER TABLE records_versions ADD CONSTRAINT {name} {definition}" for name, definition in constraints]
            + [definition for _, definition in indexes])


def _load_store(platform: Platform, store: int, own: int) -> tuple[mpi.Person, float, float]:
    """``store`` rows of other people, loaded with COPY (realistic sealed bodies, one per kind, reused),
    and ``own`` real records of one person. Answers the person, the COPY seconds and the seconds to
    build the indexes after it."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system("bench"))
        person = mpi.create_person(ctx, mpi.Demographics(name="测试", sex="1"), [])
        person_id = person.id
    bodies = _background_bodies(platform)
    now = utcnow()
    recorded = now.isoformat()
    moments = [(now - timedelta(minutes=m)).isoformat() for m in range(500_000)]
    people = 2_000_000  # five records a background person on average
    began = time.perf_counter()
    with platform.db.engine.begin() as conn:
        rebuild = _without_indexes(conn)
    columns = ["resource_id", "version", "resource_type", "institution_id", "person_id", "current", "effective_at",
               "recorded_at", "digest", "size", "body_sealed"]
    for start in range(0, store, CHUNK):
        lines = []
        for n in range(start, min(store, start + CHUNK)):
            kind, sealed, size = bodies[n % 10]
            lines.append(f"F{n:023d}\t1\t{kind}\t{INSTITUTION}\t{n % people:032X}\tt\t{moments[n % 500_000]}\t"
                         f"{recorded}\tF{n:063d}\t{size}\t{sealed}")
        with platform.db.engine.begin() as conn:
            dialect.copy_rows(conn, "records_versions", columns, ("\n".join(lines) + "\n").encode())
    copied = time.perf_counter() - began
    began = time.perf_counter()
    with platform.db.engine.begin() as conn:
        conn.execute(text("SET maintenance_work_mem = '512MB'"))
        for statement in rebuild:
            conn.execute(text(statement))
    indexed = time.perf_counter() - began
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system("bench"))
        rows = []
        for n in range(own):
            resource = _mix(n, {"reference": "Patient/x"})
            if resource["resourceType"] == "DocumentReference":
                resource["content"][0]["attachment"]["data"] = base64.b64encode(b"%PDF small").decode()
            resource_id = f"R{n:023d}"
            kept = {k: v for k, v in resource.items() if k != "subject"}
            rows.append({"resource_id": resource_id, "version": 1, "resource_type": resource["resourceType"],
                         "institution_id": INSTITUTION, "person_id": person_id, "pending_index": None, "sensitivity": None,
                         "effective_at": records.effective_at(resource), "recorded_at": now, "current": True,
                         "replaces": None, "digest": f"R{n:063d}", "size": 100,
                         "body_sealed": platform.vault.seal(json.dumps(kept), records.body_context(resource_id, 1))})
        session.execute(insert(RecordVersion.__table__), rows)
    with platform.db.engine.begin() as conn:
        conn.execute(text("ANALYZE records_versions"))
    with platform.db.session() as session:
        return session.get(mpi.Person, person_id), copied, indexed


def _reads(platform: Platform, person_id: str, runs: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Wall seconds of each timeline and ``$everything``, and this process's CPU seconds of each (the
    machine is shared: CPU time moves less with the load than wall time; PostgreSQL's is not in it)."""
    timeline, everything, timeline_cpu, everything_cpu = [], [], [], []
    resident = Actor(kind="resident", channel=Actor.anonymous().channel, id=person_id)
    for n in range(runs):
        with platform.db.session() as session:
            ctx = platform.ctx(session, resident)
            began, cpu = time.perf_counter(), time.process_time()
            found = records.access(ctx, mpi.resolve(ctx, person_id))
            records.timeline(ctx, found, limit=200)
            timeline.append(time.perf_counter() - began)
            timeline_cpu.append(time.process_time() - cpu)
            if n < 3:
                began, cpu = time.perf_counter(), time.process_time()
                bundle = records.everything(ctx, found, "http://bench/fhir")
                everything.append(time.perf_counter() - began)
                everything_cpu.append(time.process_time() - cpu)
                assert bundle["total"] > 0
    return timeline, everything, timeline_cpu, everything_cpu


def main(quick: bool = False) -> list[dict]:
    count = 200 if quick else 1000
    store = 100_000 if quick else 10_000_000
    own = 5000
    runs = 10 if quick else 40
    load_before = os.getloadavg()[0]
    _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DB_NAME}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            KeyStore.init(Path(tmp) / "keys")
            platform = _platform(url, Path(tmp))
            with platform.db.session() as session:
                session.add(Institution(id=INSTITUTION, uscc="12510000MB0000001X", name="Bench Hospital",
                                        kind="hospital", region_code="510104"))
            signed_rate, plain_rate = _ingest(platform, count)
            person, copy_seconds, index_seconds = _load_store(platform, store, own)
            with platform.db.engine.connect() as conn:
                table_bytes = conn.execute(text("SELECT pg_total_relation_size('records_versions')")).scalar()
            timeline, everything, timeline_cpu, everything_cpu = _reads(platform, person.id, runs)
            platform.db.dispose()
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    load = f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores shared with other work"
    p95 = statistics.quantiles(timeline, n=20)[18] * 1000
    return [
        {"figure": "Records ingest, signed FHIR API (PostgreSQL)", "value": round(signed_rate, 1), "unit": "resources/s",
         "reference": "plain INSERT of the same sealed rows, one transaction each", "reference_value": round(plain_rate, 1),
         "ratio": round(signed_rate / plain_rate, 3), "goal": None, "met": None,
         "notes": (f"{count} resources, mix 40% Observation, 20% Condition, 20% Encounter, 10% MedicationRequest, "
                   "10% DocumentReference with a 6 KB PDF; subject by MRN (50 patients, unknown to the index: queued); "
                   f"one in-process client, requests signed in advance; {load}")},
        {"figure": "Resident timeline (newest 200 of 5,000 records), p95", "value": round(p95, 1), "unit": "ms",
         "reference": None, "reference_value": None, "ratio": None, "goal": None, "met": None,
         "notes": (f"median {statistics.median(timeline) * 1000:.1f} ms over {runs} runs, client-side CPU median "
                   f"{statistics.median(timeline_cpu) * 1000:.1f} ms a read; store of {store + own + 2 * count:,} rows "
                   f"({store:,} of other people loaded with COPY in {copy_seconds:.0f} s, indexes built after in "
                   f"{index_seconds:.0f} s, {table_bytes / 2**30:.1f} GiB with indexes; their bodies are real SM4 seals of "
                   "one realistic resource per kind, reused, mix 40/20/20/10/10 as the ingest, documents with a 1 KB "
                   f"attachment); consent check, query, 200 bodies unsealed and titled; {load}")},
        {"figure": "Patient/$everything, 5,000 records", "value": round(statistics.median(everything), 2), "unit": "s",
         "reference": None, "reference_value": None, "ratio": None, "goal": None, "met": None,
         "notes": f"median of {len(everything)}, same store, client-side CPU median {statistics.median(everything_cpu):.2f} s; {load}; every record unsealed (checked with the fhir.resources R4B model when it was published, not again here)"},
    ]


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)
