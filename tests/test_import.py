"""Registry migration (``ehc cards import``): the service's rules in bulk, resumable, no duplicates.

Runs on SQLite (executemany path) and PostgreSQL (COPY path), like every database test.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ehc.audit import service as audit
from ehc.audit.models import AuditEvent
from ehc.cards import importer, service
from ehc.cards.models import Card, CardEvent, ImportJob
from ehc.kit.codes import Channel
from ehc.kit.context import Actor
from ehc.models import metadata
from ehc.mpi import bulk as mpi_bulk
from ehc.mpi.models import Person, PersonIdentifier
from residents import resident_id

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["legacy_id", "name", "document_type", "document_number", "sex", "birth_date", "phone", "address",
          "region_code"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


def resident(i: int) -> dict:
    """Distinct, valid residents: the i-th has its own (region, birth date, sequence)."""
    born = date(1940 + i % 60, 1 + i % 12, 1 + i % 28)
    male = i % 2 == 0
    return {
        "legacy_id": f"L{i:05d}",
        "name": SURNAMES[i % len(SURNAMES)] + GIVEN[i % len(GIVEN)] + GIVEN[(i // len(GIVEN)) % len(GIVEN)],
        "document_type": "" if i % 3 else "01",
        "document_number": resident_id(f"5101{4 + i // 100:02d}", born, i % 100, male),
        "sex": "1" if male else "2",
        "birth_date": born.isoformat(),
        "phone": f"139{i:08d}",
        "address": f"成都市武侯区人民南路{i}号",
        "region_code": "",
    }


class Registry:
    """Builds a CSV in memory and remembers the line each record starts on (header = line 1)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")
        self.writer.writerow(HEADER)
        self.rows: list[tuple[int, dict]] = []

    def add(self, row: dict) -> int:
        line = self.buffer.getvalue().count("\n") + 1
        self.writer.writerow([row.get(column, "") for column in HEADER])
        self.rows.append((line, row))
        return line

    def blank(self) -> None:
        self.buffer.write("\n")

    def save(self, path: Path) -> Path:
        path.write_text(self.buffer.getvalue(), encoding="utf-8")
        return path


def register_through_api(client, row: dict, name: str | None = None) -> str:  # noqa: ANN001
    answer = client.post("/api/v1/cards", json={
        "name": name or row["name"], "document": {"type": "01", "number": row["document_number"]},
        "sex": row["sex"], "birth_date": row["birth_date"], "phone": row["phone"]})
    assert answer.status_code == 201, answer.text
    return answer.json()["ehc_id"]


def counts(platform) -> dict[str, int]:  # noqa: ANN001
    with platform.db.session() as session:
        return {name: session.scalar(select(func.count()).select_from(model))
                for name, model in (("persons", Person), ("identifiers", PersonIdentifier), ("cards", Card),
                                    ("events", CardEvent))}


@pytest.fixture
def messy_registry(client, tmp_path: Path):  # noqa: ANN001
    """~300 residents with deliberate errors; returns (path, expectations)."""
    reg = Registry()
    expect: dict = {"rejects": {}, "already": [], "created": [], "pending": []}
    api_same = resident(900)
    api_other = resident(901)
    api_card = register_through_api(client, api_same)
    register_through_api(client, api_other)

    for i in range(280):
        row = resident(i)
        if i == 5:  # an address that spans two physical lines: later line numbers must still be right
            row["address"] = "成都市武侯区\n人民南路5号"
        line = reg.add(row)
        expect["created"].append((line, row))
        if i == 40:
            reg.blank()
        if i in (10, 60, 150, 250):  # the same resident twice in the file: kept once, counted as known
            expect["already"].append(reg.add(dict(row)))
    for i, broken in ((300, "checksum"), (301, "checksum"), (302, "checksum")):
        row = resident(i)
        last = row["document_number"][-1]
        row["document_number"] = row["document_number"][:-1] + ("1" if last != "1" else "2")
        expect["rejects"][reg.add(row)] = ("application_invalid", "document_checksum_mismatch")
    for i in (303, 304, 305):
        row = resident(i)
        # One digit short. Long enough that the dump check below cannot find it inside a hex digest by
        # chance (a five-digit "12345" turned up in the import file's SM3 on some days' test data).
        row["phone"] = "1391234567"
        expect["rejects"][reg.add(row)] = ("application_invalid", "phone_malformed")
    sex_wrong = resident(306)
    sex_wrong["sex"] = "2" if sex_wrong["sex"] == "1" else "1"
    expect["rejects"][reg.add(sex_wrong)] = ("real_name_verification_failed", "sex_mismatch")
    unknown_type = resident(307)
    unknown_type["document_type"] = "42"
    expect["rejects"][reg.add(unknown_type)] = ("application_invalid", "document_type_unknown")
    other_name = dict(resident(20))
    other_name["name"] = "欧阳修"
    expect["rejects"][reg.add(other_name)] = ("document_registered_other_name", "document_registered_other_name")
    expect["already"].append(reg.add(dict(api_same)))
    api_renamed = dict(api_other)
    api_renamed["name"] = "司马光"
    expect["rejects"][reg.add(api_renamed)] = ("document_registered_other_name", "document_registered_other_name")
    passport = {"name": "John Smith", "document_type": "03", "document_number": "E12345678", "sex": "1",
                "birth_date": "1980-05-04", "phone": "13912345678"}
    line = reg.add(passport)
    expect["pending"].append(line)
    expect["created"].append((line, passport))
    for i in (308, 309):  # rows after the errors still import
        line = reg.add(resident(i))
        expect["created"].append((line, resident(i)))
    expect["api_same"], expect["api_card"] = api_same, api_card
    expect["rows"] = reg.rows
    return reg.save(tmp_path / "registry.csv"), expect


def read_report(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_import_applies_the_service_rules_and_reports_rejections(platform, client, messy_registry, tmp_path):  # noqa: ANN001
    path, expect = messy_registry
    report = tmp_path / "rejected.csv"
    result = importer.import_csv(platform, path, operator="migration-test", batch_size=64, workers=0,
                                 report=report)

    assert result.finished
    assert result.created == len(expect["created"])
    assert result.pending_review == 1
    assert result.already_registered == len(expect["already"])
    assert result.rejected == len(expect["rejects"])
    assert result.rows_done == len(expect["rows"]) + 1  # + the blank line, consumed but not reported

    # The report: line numbers and codes, and never a document number in clear.
    rows = read_report(report)
    assert {int(r["line"]): (r["problem"], r["code"]) for r in rows} == expect["rejects"]
    assert [int(r["line"]) for r in rows] == sorted(expect["rejects"])
    body = report.read_text(encoding="utf-8")
    for _, row in expect["rows"]:
        assert row["document_number"] not in body
        assert row["phone"] not in body
    checksum = next(r for r in rows if r["code"] == "document_checksum_mismatch")
    assert checksum["document_number_masked"].startswith("510") and "*" * 11 in checksum["document_number_masked"]
    assert not any(ch.isdigit() for ch in checksum["document_number_masked"][3:14])

    # No duplicates: one person, one identifier, one card and one "register" event per document.
    expected_people = len(expect["created"]) + 2  # + the two registered through the API
    assert counts(platform) == {"persons": expected_people, "identifiers": expected_people,
                                "cards": expected_people, "events": expected_people}

    actor = Actor.system("test", Channel.WINDOW)
    imported_people: set[str] = set()
    with platform.db.session() as session:
        ctx = platform.ctx(session, actor)
        # Already registered through the API: the API's card is kept, untouched.
        kept = service.find_by_document(ctx, "01", expect["api_same"]["document_number"])
        assert kept.ehc_id == expect["api_card"] and kept.channel != Channel.BATCH_IMPORT.value
        # Every imported row is findable, its sealed fields open to what was in the file.
        for line, row in expect["created"]:
            card = service.find_by_document(ctx, row["document_type"] or "01", row["document_number"])
            person, details, identifiers = service.holder(ctx, card, purpose="card.view")
            assert details.name == row["name"]
            assert details.phone == row["phone"]
            assert details.birth_date == date.fromisoformat(row["birth_date"])
            assert details.address == row.get("address")
            assert [i.value for i in identifiers] == [row["document_number"]]
            assert card.channel == Channel.BATCH_IMPORT.value and card.operator == "migration-test"
            assert card.status == ("pending_review" if line in expect["pending"] else "normal")
            [event] = service.history(ctx, card)
            assert (event.action, event.actor_kind, event.channel, event.to_status) == (
                "register", "system", "0900", card.status)
            assert person.birth_year == date.fromisoformat(row["birth_date"]).year
            imported_people.add(person.id)

    # As for any registration, each new holder's audit trail says who registered them; the chain holds
    # once what the import's commits left in intake is chained, as the sweeper or any reader does.
    with platform.db.session() as session:
        audit.chain_pending(session)
    with platform.db.session() as session:
        registered = session.execute(
            select(AuditEvent.person_id, AuditEvent.actor_kind, AuditEvent.operator, AuditEvent.channel)
            .where(AuditEvent.purpose == "card.register", AuditEvent.action == "change",
                   AuditEvent.channel == Channel.BATCH_IMPORT.value)
        ).all()
        assert sorted(r.person_id for r in registered) == sorted(imported_people)
        assert {(r.actor_kind, r.operator) for r in registered} == {("system", "migration-test")}
        report = audit.verify_chain(platform.ctx(session, actor))
        assert report.intact and report.unchained == 0, report.summary()


def test_nothing_personal_is_stored_in_clear(platform, messy_registry, tmp_path):  # noqa: ANN001
    path, expect = messy_registry
    importer.import_csv(platform, path, batch_size=100, workers=0, report=tmp_path / "r.csv")
    dump = []
    with platform.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(table.select()):
                dump.extend(str(value) for value in row)
    dump_text = "\n".join(dump)
    for _, row in expect["rows"]:
        assert row["document_number"] not in dump_text
        assert row["phone"] not in dump_text
        assert row["name"] not in dump_text


def test_an_interrupted_import_resumes_without_doing_anything_twice(platform, tmp_path, monkeypatch):  # noqa: ANN001
    reg = Registry()
    for i in range(300):
        reg.add(resident(i))
    path = reg.save(tmp_path / "big.csv")

    # 1. Killed after two committed batches.
    class Killed(Exception):
        pass

    def kill_after_two(progress) -> None:  # noqa: ANN001
        if progress.rows_done >= 100:
            raise Killed

    with pytest.raises(Killed):
        importer.import_csv(platform, path, batch_size=50, workers=0, on_batch=kill_after_two)
    assert counts(platform)["cards"] == 100

    # 2. A crash inside the third batch's transaction, after its cards were written: nothing of it stays.
    real = importer._record_progress
    calls = {"n": 0}

    def crash_on_second_call(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        real(*args, **kwargs)

    monkeypatch.setattr(importer, "_record_progress", crash_on_second_call)
    with pytest.raises(RuntimeError, match="power cut"):
        importer.import_csv(platform, path, batch_size=50, workers=0)
    monkeypatch.setattr(importer, "_record_progress", real)
    assert counts(platform) == {"persons": 150, "identifiers": 150, "cards": 150, "events": 150}
    with platform.db.session() as session:
        job = session.scalars(select(ImportJob)).one()
        assert (job.status, job.rows_done, job.created) == ("running", 150, 150)

    # 3. Re-run with worker processes: the rest is imported, nothing twice.
    progress_seen = []
    result = importer.import_csv(platform, path, batch_size=50, workers=2,
                                 on_start=lambda p: progress_seen.append(p.resumed_from))
    assert progress_seen == [150]
    assert (result.finished, result.rows_done, result.created, result.already_registered, result.rejected) == (
        True, 300, 300, 0, 0)
    assert counts(platform) == {"persons": 300, "identifiers": 300, "cards": 300, "events": 300}
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system("test"))
        registered = session.scalars(select(AuditEvent.person_id).where(AuditEvent.purpose == "card.register"))
        assert sorted(registered) == sorted(session.scalars(select(Person.id)))
        assert audit.verify_chain(ctx).intact
        for _, row in reg.rows:
            assert service.find_by_document(ctx, "01", row["document_number"]).status == "normal"

    # 4. Running a finished file again does nothing.
    again = importer.import_csv(platform, path, batch_size=50, workers=0)
    assert again.finished and again.resumed_from == 300 and counts(platform)["cards"] == 300


def test_a_registration_committed_between_the_check_and_the_write_is_respected(platform, client, tmp_path,
                                                                              monkeypatch):
    """The race the fast path cannot see: a document of the batch registered through the API after the
    batch looked its documents up. The database refuses the batch (unique blind index), the batch is
    written again the careful way in a new transaction, and the API's card stays the only one."""
    reg = Registry()
    rows = [resident(i) for i in range(10)]
    for row in rows:
        reg.add(row)
    path = reg.save(tmp_path / "race.csv")
    api_card = register_through_api(client, rows[3])
    real = mpi_bulk.held_identifiers
    calls = {"n": 0}

    def blind_first_look(connection, blind_indexes):
        calls["n"] += 1
        return set() if calls["n"] == 1 else real(connection, blind_indexes)

    monkeypatch.setattr(mpi_bulk, "held_identifiers", blind_first_look)
    result = importer.import_csv(platform, path, batch_size=50, workers=0)
    assert (result.created, result.already_registered, result.rejected) == (9, 1, 0)
    assert counts(platform) == {"persons": 10, "identifiers": 10, "cards": 10, "events": 10}
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system("test"))
        assert service.find_by_document(ctx, "01", rows[3]["document_number"]).ehc_id == api_card
        assert audit.verify_chain(ctx).intact


def test_a_file_without_the_required_columns_is_refused(platform, tmp_path):  # noqa: ANN001
    path = tmp_path / "wrong.csv"
    path.write_text("nom,numero\n张三,11010519491231002X\n", encoding="utf-8")
    with pytest.raises(importer.ImportFailed) as failure:
        importer.import_csv(platform, path, workers=0)
    assert failure.value.code == "import_header_invalid"
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_the_cli_imports_and_writes_the_report(platform, messy_registry, tmp_path):  # noqa: ANN001
    path, expect = messy_registry
    report = tmp_path / "cli-rejected.csv"
    env = {**os.environ, "EHC_DATABASE_URL": platform.settings.database_url,
           "EHC_KEYS_DIR": str(platform.settings.keys_dir), "EHC_DATA_DIR": str(tmp_path), "COLUMNS": "120"}
    command = [sys.executable, "-m", "ehc.cli", "cards", "import", str(path), "--report", str(report),
               "--batch-size", "40", "--workers", "1", "--operator", "registry-migration", "--progress-every", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rejected" in done.stdout and str(len(expect["rejects"])) in done.stdout
    assert {int(r["line"]) for r in read_report(report)} == set(expect["rejects"])
    with platform.db.engine.connect() as conn:
        operators = set(conn.execute(text("SELECT DISTINCT operator FROM cards WHERE channel = '0900'")).scalars())
    assert operators == {"registry-migration"}

    # Not on a terminal (captured, like cron or CI): a plain progress line per batch here, each with
    # the rows read so far, as the import runs, not only at the end.
    lines = [line for line in done.stdout.splitlines() if " rows " in line and "rows/s" in line]
    done_rows = [int(line.split(" rows ")[1].split("/")[0].replace(",", "")) for line in lines]
    assert len(lines) >= 7 and done_rows == sorted(set(done_rows)), done.stdout  # 40 rows a batch, ~300 rows
    assert all(later - earlier <= 40 for earlier, later in zip(done_rows, done_rows[1:])), done_rows

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.returncode == 0 and "already imported" in again.stdout
