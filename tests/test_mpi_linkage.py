"""Batch linkage of a hospital's patient list to the master index (``ehc mpi link FILE``).

A small synthetic index (Chinese demographics with known truth, ``ehc.mpi.synth``) is written
through the master index service on each database; a patient list made of corrupted copies of some
of its people, people who are not in it and some bad rows is linked with Splink, on DuckDB and
(once, marked) on Spark in local mode.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from ehc.audit.models import AuditEvent
from ehc.kit.context import Actor
from ehc.mpi import service, synth
from ehc.mpi.linkage import clean, decide
from ehc.mpi.linkage import input as patient_list
from ehc.mpi.models import LinkJob, MatchReview, PersonIdentifier

EHC = [sys.executable, "-m", "ehc.cli"]
CHINESE_HEADERS = {"mrn": "住院号", "name": "姓名", "sex": "性别", "birth_date": "出生日期", "phone": "手机号",
                   "id_number": "证件号码", "address": "地址"}
BAD_ROWS = [  # (mrn, name, sex, birth_date, id_number): each breaks one rule
    ("", "张三", "1", "1980-01-01", ""),  # mrn_missing: rejected
    ("BAD-DATE", "李四", "1", "1980-13-45", ""),  # birth date unreadable and nothing else: rejected
    ("BAD-SEX", "王五", "x", "1980-01-01", ""),  # sex unreadable: unknown, kept
    ("BAD-ID", "赵六", "2", "1980-01-01", "110101198001011244"),  # check character fails: kept, noted
    ("NOTHING", "", "", "", ""),  # nothing_to_match_on: rejected
]
REJECTED = 3


@pytest.fixture(scope="module")
def test_set() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return synth.generate(n_people=160, n_duplicates=70, seed=11, n_new=20)


def _build_index(platform, index: pd.DataFrame, duplicated: set[str] = frozenset()) -> dict[str, str]:
    """Create the index's people through the service; some hold a card. rec_id -> person id.

    The people of ``duplicated`` are registered twice (the second time without a document), as an
    index that needs cleaning holds them: a list row for them cannot be linked with certainty."""
    from datetime import date

    from ehc.cards.models import Card

    made = {}
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        for n, row in enumerate(index.itertuples(index=False)):
            details = service.Demographics(name=row.name, sex=row.sex, birth_date=date.fromisoformat(row.birth_date),
                                           phone=row.phone, address=row.address, region_code=row.region_code)
            identifiers = [service.Identifier("doc:01", row.id_number)] if row.id_number else []
            person = service.create_person(ctx, details, identifiers)
            made[row.rec_id] = person.id
            if row.rec_id in duplicated:
                service.create_person(ctx, details, [])
            if n % 3 == 0:
                # Distinct 80-bit prefixes: a card id's first 20 hex digits are unique (qr-format §5.2).
                session.add(Card(ehc_id=f"{n:020X}" + "0" * 44, person_id=person.id, status="normal", channel="0100"))
    return made


def _write_list(path: Path, queries: pd.DataFrame, *, chinese_headers: bool = True) -> dict[str, str]:
    """The hospital's list: its MRN for each query record, then the bad rows. mrn -> query rec_id."""
    rows, mrn_of = [], {}
    for n, row in enumerate(queries.itertuples(index=False)):
        mrn = f"ZY{n:05d}"
        mrn_of[mrn] = row.rec_id
        rows.append([mrn, row.name, "男" if row.sex == "1" else "女" if row.sex == "2" else "",
                     row.birth_date.replace("-", "/"), row.phone or "", row.id_number or "", row.address])
    for mrn, name, sex, birth, id_number in BAD_ROWS:
        rows.append([mrn, name, sex, birth, "", id_number, ""])
    columns = ["mrn", "name", "sex", "birth_date", "phone", "id_number", "address"]
    header = [CHINESE_HEADERS[c] for c in columns] if chinese_headers else columns
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return mrn_of


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _counts(platform, institution: str) -> tuple[int, int]:
    with platform.db.session() as session:
        ids = session.scalar(select(func.count()).select_from(PersonIdentifier)
                             .where(PersonIdentifier.system == f"mrn:{institution}"))
        reviews = session.scalar(select(func.count()).select_from(MatchReview).where(MatchReview.source == "batch"))
    return ids, reviews


def test_link_a_patient_list_then_rerun_it(platform, institution, test_set, tmp_path):
    index, queries, truth = test_set
    undocumented = set(queries.loc[queries["id_number"].isna(), "rec_id"])
    twice = set(truth.loc[truth["query_rec_id"].isin(undocumented), "index_rec_id"][:4])
    person_of = _build_index(platform, index, twice)
    listed = tmp_path / "patients.csv"
    mrn_of = _write_list(listed, queries)
    true_person = {mrn: person_of[t] for mrn, rec in mrn_of.items()
                   for t in truth.loc[truth["query_rec_id"] == rec, "index_rec_id"]}

    result = service.link_file(platform, listed, institution, out=tmp_path / "out")
    # Every bad row is rejected (the generator's typos can also put a birth date in the future).
    assert result.records + result.rejected == len(queries) + len(BAD_ROWS) and result.rejected == REJECTED
    assert result.linked > 0.6 * len(truth) and result.queued >= 2 * len(twice) and result.unmatched > 0
    assert result.records == result.linked + result.conflicts + len({r["mrn"] for r in _read(tmp_path / "out" / "review.csv")}) \
        + result.unmatched

    # Certain links are right, bound as mrn:<institution>, and audited for the person.
    links = _read(tmp_path / "out" / "links.csv")
    assert len(links) == result.linked and {row["status"] for row in links} == {"linked"}
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        wrong = 0
        for row in links:
            person = service.find_by_identifier(ctx, service.Identifier(f"mrn:{institution}", row["mrn"]))
            assert person is not None
            wrong += true_person.get(row["mrn"]) != person.id
            if row["ref_kind"] == "card":
                assert len(row["person_ref"]) == 64
            else:
                assert row["person_ref"] == person.id
            audited = session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.person_id == person.id, AuditEvent.purpose == "mpi.identifiers"))
            assert audited >= 1
        assert wrong <= 1  # precision of the certain grade
        job = session.get(LinkJob, result.job_id)
        assert (job.status, job.records, job.linked, job.queued, job.unmatched) == (
            "done", result.records, result.linked, result.queued, result.unmatched)
        queued = session.scalars(select(MatchReview).where(MatchReview.link_job_id == job.id)).all()
        assert len(queued) == result.queued and {r.grade for r in queued} <= {"probable", "possible"}
        assert all(r.source == "batch" and r.institution_id == institution and r.record_sealed for r in queued)
        assert all("name" in review_comparison for review_comparison in (r.comparison for r in queued))

    # The review file is masked; the rejects say why, by line, without the row's personal data.
    review_rows = _read(tmp_path / "out" / "review.csv")
    assert len(review_rows) == result.queued
    names = set(queries["name"])
    assert all(r["list_name"] not in names and "*" in r["list_name"] for r in review_rows if r["list_name"])
    assert all("****" in r["list_phone"] for r in review_rows if r["list_phone"])
    rejects = {r["mrn"]: r for r in _read(tmp_path / "out" / "rejects.csv")}
    assert set(rejects) == {"", "BAD-DATE", "NOTHING"}
    assert rejects["BAD-DATE"]["reasons"] == "nothing_to_match_on" and "nothing to match on" in rejects["NOTHING"]["explanation"]
    assert rejects[""]["reasons"] == "mrn_missing" and rejects[""]["line"] == str(len(queries) + 2)
    noted = {r["mrn"]: r for r in _read(tmp_path / "out" / "notes.csv")}
    assert noted["BAD-ID"]["notes"] == "id_number_failed_check" and "BAD-SEX" not in noted
    assert "birth_date_unreadable" in noted.get("BAD-DATE", {"notes": "birth_date_unreadable"})["notes"]
    assert "赵六" not in (tmp_path / "out" / "rejects.csv").read_text(encoding="utf-8")
    assert len(_read(tmp_path / "out" / "unmatched.csv")) == result.unmatched
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "vega-lite-spec" in report and "Match weights of each comparison level" in report
    assert "m and u parameters" in report and f"{result.linked:,}" in report

    # The same file again: nothing is linked twice, no pair is queued twice.
    before = _counts(platform, institution)
    again = service.link_file(platform, listed, institution, out=tmp_path / "again")
    assert (again.linked, again.queued, again.conflicts) == (0, 0, 0)
    assert again.already_linked == result.linked
    assert _counts(platform, institution) == before
    assert {r["status"] for r in _read(tmp_path / "again" / "links.csv")} == {"already_linked"}
    assert {r["review_id"] for r in _read(tmp_path / "again" / "review.csv")} == {r["review_id"] for r in review_rows}
    assert {r["status"] for r in _read(tmp_path / "again" / "review.csv")} <= {"already_queued"}  # queued by the first run
    assert {r["status"] for r in review_rows} == {"queued"}


def test_dry_run_links_nothing(platform, institution, test_set, tmp_path):
    index, queries, _ = test_set
    _build_index(platform, index.head(60))
    listed = tmp_path / "patients.csv"
    _write_list(listed, queries.head(30), chinese_headers=False)
    result = service.link_file(platform, listed, institution, out=tmp_path / "out", dry_run=True)
    assert result.job_id is None and result.linked > 0
    assert _counts(platform, institution) == (0, 0)
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(LinkJob)) == 0
    assert len(_read(tmp_path / "out" / "links.csv")) == result.linked


def test_parquet_and_header_checks(tmp_path):
    frame = pd.DataFrame({"病案号": ["a-1", "a-2"], "姓名": ["张三", "李四"], "出生日期": ["19800101", "1980年2月3日"],
                          "unknown": ["x", "y"]})
    frame.to_parquet(tmp_path / "list.parquet")
    rows = patient_list.read_patient_list(tmp_path / "list.parquet")
    cleaned = clean.clean_rows(rows)
    assert list(cleaned.frame["mrn"]) == ["A-1", "A-2"] and cleaned.rejects == []
    assert list(cleaned.frame["birth_date"]) == ["1980-01-01", "1980-02-03"]
    assert list(cleaned.frame["name_py"]) == ["zhangsan", "lisi"]
    pd.DataFrame({"name": ["张三"]}).to_csv(tmp_path / "no_mrn.csv", index=False)
    with pytest.raises(service.LinkInputError) as missing:
        patient_list.read_patient_list(tmp_path / "no_mrn.csv")
    assert missing.value.code == "mrn_column_missing"
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    with pytest.raises(service.LinkInputError) as unreadable:
        patient_list.read_patient_list(tmp_path / "binary.csv")
    assert unreadable.value.code == "file_unreadable"


def test_decisions_short_circuit_documents_and_hold_back_close_runners_up():
    pairs = pd.DataFrame([
        ("r1", "p1", 20.0, 0.9999, "{}"), ("r1", "p2", 18.0, 0.999, "{}"),  # twins: certain but close -> review
        ("r2", "p3", 25.0, 0.99999, "{}"), ("r2", "p4", 2.0, 0.6, "{}"),  # clear winner -> certain
        ("r3", "p5", 5.0, 0.95, "{}"),  # probable
        ("r4", "p6", -3.0, 0.2, "{}"),  # below possible: unmatched
        ("r5", "p7", 1.0, 0.55, "{}"),  # the model is unsure, but the document is the same
    ], columns=["record_id", "person_id", "match_weight", "match_probability", "comparison"])
    documents = pd.DataFrame({"record_id": ["r5"], "person_id": ["p9"]})
    decided = decide.decide(pairs, documents).set_index(["record_id", "person_id"])
    assert decided.loc[("r5", "p9"), "grade"] == "certain" and decided.loc[("r5", "p9"), "reason"] == "document"
    assert ("r5", "p7") not in decided.index
    assert decided.loc[("r2", "p3"), "grade"] == "certain" and ("r2", "p4") not in decided.index
    assert set(decided.loc["r1", "grade"]) == {"probable"} and decided.loc[("r1", "p1"), "reason"] == "ambiguous"
    assert decided.loc[("r3", "p5"), "grade"] == "probable"
    assert "r4" not in decided.index.get_level_values(0)


def test_two_cards_of_a_patient_not_in_the_index_make_one_cluster():
    from ehc.mpi.linkage import cluster

    address = "四川省成都市锦江区人民路12号3栋2单元501室"
    rows = [clean.frame_row("r1", "欧阳子涵", "2", "2015-03-09", "13912345678", address, None, None),
            clean.frame_row("r2", "欧阳子涵", "2", "2015-03-09", "13912345678", address, None, None),
            clean.frame_row("r3", "欧阳子涵", "2", "2015-03-09", "13987654321", "云南省凤庆县锦华巷1号", None, None)]
    records = pd.DataFrame(rows, columns=list(clean.FRAME_COLUMNS), dtype=object)
    found = cluster.clusters(records, [])  # neither row is linked: both cards, one cluster
    assert sorted(found["record_id"]) == ["r1", "r2"] and found["cluster"].nunique() == 1


def _hard_list(people: int, duplicates: int, seed: int):
    """A small hard legacy list (synth, as bench/profile_linkage.py builds one) cleaned by the job's
    reader, its index frame, and (record, person) for the rows whose person is in the index."""
    index_rows, queries, truth = synth.generate(n_people=people, n_duplicates=duplicates, seed=seed, hard=True)
    raw = pd.DataFrame(
        [(line, f"ZY{line:07d}", q.name, q.sex, q.birth_date.replace("-", "/"), q.phone or "",
          "01" if q.id_number else "", q.id_number or "", q.address or "", "")
         for line, q in enumerate(queries.itertuples(index=False), start=2)],
        columns=["line", "mrn", "name", "sex", "birth_date", "phone", "id_type", "id_number", "address", "region_code"])
    records = clean.clean_rows(raw).frame
    index = pd.DataFrame([clean.frame_row(r.rec_id, clean.name_for_matching(r.name) or None, r.sex, r.birth_date,
                                          r.phone, clean.normalise_address(r.address) or None, r.region_code,
                                          f"doc:01:{r.id_number}" if r.id_number else None)
                          for r in index_rows.itertuples(index=False)], columns=list(clean.FRAME_COLUMNS), dtype=object)
    record_of = {rec: f"r{line}" for line, rec in enumerate(queries["rec_id"], start=2)}
    kept = set(records["unique_id"])
    true = [(record_of[q], i) for i, q in zip(truth["index_rec_id"], truth["query_rec_id"]) if record_of[q] in kept]
    return records, index, true


def test_clustering_is_the_same_in_worker_processes_and_with_linked_pairs_skipped(monkeypatch):
    from ehc.mpi.linkage import cluster
    from ehc.mpi.matching import names

    records, _index, true = _hard_list(1200, 800, 20268)
    # The names are read from the reader's pinyin columns: the same as parsing them again.
    for name, surname_py, given_py in records[["name", "surname_py", "given_py"]].itertuples(index=False):
        assert names.parse_read(name, surname_py, given_py) == names.parse(name)
    links = [{"record_id": r, "person_id": p} for r, p in true[::2]]
    one = cluster.clusters(records, links, workers=0)
    monkeypatch.setattr(cluster, "PAIRS_PER_TASK", 40)  # several tasks on a small list
    assert cluster.clusters(records, links, workers=2).equals(one)
    # Rows linked to the same person are not compared: the clusters are those of comparing every pair.
    every_pair = cluster.within_list_pairs
    monkeypatch.setattr(cluster, "within_list_pairs",
                        lambda frame, *, linked=None, workers=None: every_pair(frame, workers=0))
    assert cluster.clusters(records, links, workers=0).equals(one)
    assert one["cluster"].nunique() > 50 and (one["person_id"] != "").any()


def test_pairs_found_before_the_links_are_written_give_the_same_clusters():
    from ehc.mpi.linkage import cluster

    records, _index, true = _hard_list(1200, 800, 20270)
    links = [{"record_id": r, "person_id": p} for r, p in true]
    one = cluster.clusters(records, links, workers=0)
    # As decided, every row of a person goes to one person; as written, a third of the links were lost
    # (a conflict: the number held by someone else) and a tenth went to another person (merged): the
    # pairs the decisions set aside are compared once the links are known.
    decided = {link["record_id"]: link["person_id"] for link in links}
    written = [({"record_id": link["record_id"], "person_id": f"merged-{link['person_id']}"} if n % 10 == 1 else link)
               for n, link in enumerate(links) if n % 3 != 0]
    found = cluster.pairs_before_links(records, decided, workers=0)
    assert found.deferred  # rows decided for one person were not compared ...
    assert cluster.clusters(records, written, found=found).equals(cluster.clusters(records, written, workers=0))
    # ... and with the links written as decided, nothing set aside is compared again.
    assert cluster.clusters(records, links, found=found).equals(one)


def test_grading_is_the_same_in_worker_processes(monkeypatch):
    records, index, true = _hard_list(1200, 800, 20269)
    people = index["unique_id"].tolist()
    pairs = pd.DataFrame([(r, p, 7.5 - n % 13, 0.0, "{}") for n, (r, p) in enumerate(true)]
                         + [(r, people[n * 7 % len(people)], 1.0, 0.0, "{}") for n, (r, _) in enumerate(true)],
                         columns=["record_id", "person_id", "match_weight", "match_probability", "comparison"])
    one = decide.weigh(pairs, index, records, workers=0)
    monkeypatch.setattr(decide, "PAIRS_PER_TASK", 300)
    assert decide.weigh(pairs, index, records, workers=2).equals(one)
    assert set(one["cap"]) >= {"", "possible", "decisive"}


def _env(settings) -> dict:
    return {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
            "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}


def test_cli_errors_are_clear(platform, institution, settings, tmp_path):
    env = _env(settings)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*EHC, "mpi", "link", *args], env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    (tmp_path / "ok.csv").write_text("mrn,name\n1,张三\n", encoding="utf-8")
    (tmp_path / "no_mrn.csv").write_text("name\n张三\n", encoding="utf-8")
    cases = [
        (run(str(tmp_path / "ok.csv"), "--institution", "no-such-hospital"), "institution_not_found"),
        (run(str(tmp_path / "missing.csv"), "--institution", institution), "file_unreadable"),
        (run(str(tmp_path / "no_mrn.csv"), "--institution", institution), "mrn_column_missing"),
        (run(str(tmp_path / "ok.csv"), "--institution", institution, "--backend", "oracle"), "backend_unknown"),
    ]
    for done, code in cases:
        assert done.returncode == 2, done.stdout + done.stderr
        assert code in done.stderr and "Traceback" not in done.stderr
    ok = run(str(tmp_path / "ok.csv"), "--institution", institution, "--out", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    assert "unmatched" in ok.stdout and (tmp_path / "out" / "unmatched.csv").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_spark_backend_in_local_mode(platform, institution, test_set, tmp_path):
    """SPARK (local[2], small input): the same list on Spark and DuckDB links the same people."""
    index, queries, _ = test_set
    _build_index(platform, index.head(80))
    listed = tmp_path / "patients.csv"
    _write_list(listed, queries.head(40))
    on_duckdb = service.link_file(platform, listed, institution, out=tmp_path / "duckdb", dry_run=True)
    on_spark = service.link_file(platform, listed, institution, out=tmp_path / "spark", dry_run=True, backend="spark")
    assert on_spark.linked > 0 and on_spark.records == on_duckdb.records
    duck = {(r["mrn"], r["person_ref"]) for r in _read(tmp_path / "duckdb" / "links.csv")}
    spark = {(r["mrn"], r["person_ref"]) for r in _read(tmp_path / "spark" / "links.csv")}
    assert len(duck & spark) >= 0.9 * max(len(duck), len(spark))
    assert "Match weights of each comparison level" in (tmp_path / "spark" / "report.html").read_text(encoding="utf-8")


def test_one_record_gets_the_same_outcome_through_either_door(platform, institution, test_set, tmp_path):
    """The hard cases fed through batch linkage and the real-time matcher: the same person linked,
    or none (the normalisers and the decision rule are shared: ``matching.evidence``)."""
    from datetime import date

    from ehc.identity import service as identity
    from ehc.mpi import matching

    index, queries, _ = test_set
    person_of = _build_index(platform, index)
    documented = index[index["id_number"].notna() & index["birth_date"].str.startswith("19")]
    mother, other = documented.iloc[0], documented.iloc[1]
    number, born = mother.id_number, mother.birth_date
    mistyped = number[:8] + str((int(number[8]) + 1) % 10) + number[9:]
    rows = [  # mrn, name, sex, birth date, phone, id number, address; who it must link to (or None)
        ("OLD-15", mother["name"], "F" if mother.sex == "2" else "M", born, "", number[:6] + number[8:17], "",
         mother.rec_id),
        ("TYPO-ID", mother["name"], mother.sex, born, "", mistyped, mother.address, mother.rec_id),
        ("GUARDIAN", mother["name"][0] + "小宝", "1" if mother.sex == "2" else "2", "2019-04-05", mother.phone or "",
         number, mother.address, None),
        ("LOOKALIKE", other["name"], other.sex, other.birth_date, "13000000001", "", "西藏自治区某县某路1号", None),
        ("LANDLINE", other["name"], "男" if other.sex == "1" else "女", other.birth_date, "0571-88123456",
         other.id_number, "", other.rec_id),
    ]
    listed = tmp_path / "hard.csv"
    with open(listed, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["hospital_mrn", "name", "sex", "birth_date", "phone", "id_number", "address"])
        for row in queries.itertuples(index=False):
            writer.writerow([f"Q-{row.rec_id}", row.name, row.sex, row.birth_date, row.phone or "", row.id_number or "",
                             row.address])
        writer.writerows([r[:7] for r in rows])
    batch = service.link_file(platform, listed, institution, out=tmp_path / "out", dry_run=True)
    assert batch.rejected == 0
    batch_links = {r["mrn"]: r["person_ref"] for r in _read(tmp_path / "out" / "links.csv")}

    def realtime(name, sex, birth, phone, id_number, address) -> str | None:
        reading, _ = matching.evidence.read_document("01", id_number) if id_number else (None, None)
        record = matching.Record(
            name=name, sex=matching.evidence.sex_code(sex), birth_date=date.fromisoformat(birth) if birth else None,
            phone=matching.evidence.phone_digits(phone), address=address or None,
            document=service.Identifier(reading.system, reading.number) if reading else None)
        with platform.db.session() as session:
            found = matching.match(platform.ctx(session, Actor.system()), record, limit=2)
        certain = [c for c in found if c.grade == "certain"]
        return certain[0].person_id if len(certain) == 1 else None

    card_of = {}
    for mrn, name, sex, birth, phone, id_number, address, expected in rows:
        person = realtime(name, sex, birth, phone, id_number, address)
        assert person == (person_of[expected] if expected else None), mrn
        card_of[mrn] = person
        linked = batch_links.get(mrn)
        if expected is None:
            assert linked is None, mrn
        else:
            assert linked is not None, mrn
    # The whole list: where both doors link, they link the same person; they rarely disagree on linking.
    same = differ = 0
    by_ref = {}
    for row in queries.itertuples(index=False):
        person = realtime(row.name, row.sex, row.birth_date, row.phone, row.id_number, row.address)
        linked = batch_links.get(f"Q-{row.rec_id}")
        by_ref.setdefault(linked, set()).add(person)
        same += (person is None) == (linked is None)
        differ += (person is None) != (linked is None)
    assert differ <= 0.1 * (same + differ), (same, differ)
