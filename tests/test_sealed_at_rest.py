"""A dump of the database holds no document number, phone number or name in clear."""

from __future__ import annotations

import random
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

from sqlalchemy.engine import make_url

from residents import random_resident, resident_id


def _dump(url: str) -> bytes:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        # Fold the write-ahead log into the main file, then read every file SQLite keeps.
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return subprocess.run(
        ["pg_dump", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
         "--no-owner", parsed.database],
        check=True, capture_output=True,
    ).stdout


def test_database_dump_has_no_personal_data_in_clear(client, clerk, platform, his):
    rng = random.Random(7)
    residents = [random_resident(rng) for _ in range(25)]
    for resident in residents:
        resident["address"] = "成都市青羊区少城路" + str(rng.randint(1, 99)) + "号"
        answer = client.post("/api/v1/cards", json=resident, headers={"Idempotency-Key": f"apply-{rng.random()}"})
        assert answer.status_code == 201, answer.text
        # A hospital publishes a record with the patient's name, ID number and phone in a contained Patient
        # and in the narrative (health records, issue 16): none of it may reach the database in clear.
        patient = {"resourceType": "Patient", "id": "p", "name": [{"text": resident["name"]}],
                   "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": resident["document"]["number"]}],
                   "telecom": [{"system": "phone", "value": resident["phone"]}]}
        record = {"resourceType": "Condition", "subject": {"reference": f"Patient/{answer.json()['ehc_id']}"},
                  "contained": [patient], "recordedDate": "2026-11-02",
                  "code": {"text": f"Hypertension of {resident['name']}"},
                  "text": {"status": "generated", "div": f"<div xmlns=\"http://www.w3.org/1999/xhtml\">{resident['name']} "
                                                         f"{resident['document']['number']}</div>"}}
        published = client.post("/fhir/Condition", json=record, auth=his)
        assert published.status_code == 201, published.text
    guardian = client.post("/api/v1/cards", json=residents[0]).json()["ehc_id"]
    child = {"name": "赵子涵", "document": {"type": "01", "number": resident_id(born=date(2016, 1, 1), sequence=3)},
             "sex": "1", "birth_date": "2016-01-01", "relation": "child"}
    assert client.post(f"/api/v1/cards/{guardian}/family", json=child, headers=clerk).status_code == 201
    passport = {"name": "John Smith", "document": {"type": "03", "number": "P9K4471203"}, "phone": "13711112222"}
    assert client.post("/api/v1/cards", json=passport).status_code == 201

    dump = _dump(platform.settings.database_url)
    assert len(dump) > 10_000  # it is a real dump with the rows in it
    secrets = [r["document"]["number"] for r in residents] + [r["phone"] for r in residents]
    secrets += [r["name"] for r in residents] + [r["address"] for r in residents]
    secrets += [child["document"]["number"], child["name"], "P9K4471203", "John Smith", "13711112222"]
    leaked = [s for s in secrets if s.encode("utf-8") in dump]
    assert leaked == []
    # Birth dates are sealed too; only the birth year is kept in clear for statistics.
    assert residents[1]["birth_date"].encode() not in dump or residents[1]["birth_date"].endswith("-01-01")
