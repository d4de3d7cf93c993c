"""The write step of batch linkage in bulk (``mpi.linkage.apply.apply_decisions``).

Decisions are made up here (no Splink: the step under test only writes them), a few hundred links
and review pairs, and applied twice: in bulk for one hospital, and one by one for another hospital
through the service calls the step used to make for each row (``add_identifier``, ``record_access``,
``review.enqueue``). Both must leave the same identifiers, access-log events and review queue.
"""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from factories import make_institution
from sqlalchemy import func, select

from ehc.audit import service as audit
from ehc.audit.models import AuditEvent
from ehc.kit.codes import Channel
from ehc.kit.context import Actor
from ehc.mpi import persons, review, service
from ehc.mpi.linkage import apply
from ehc.mpi.matching import Candidate
from ehc.mpi.models import MatchReview, PersonIdentifier
from ehc.mpi.sealed import review_record

PEOPLE = 300
LINKS = 250  # r0..r249 certain (r249 to the same person as r0: two numbers, one person)
REVIEWED = range(250, 300)  # a probable and a possible pair each
UNMATCHED = range(300, 340)
OTHER = "inst-test-02"


@pytest.fixture
def people(platform) -> list[str]:
    made = []
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        for n in range(PEOPLE):
            details = service.Demographics(name=f"张{n}", sex="12"[n % 2], birth_date=date(1950 + n % 50, 1 + n % 12, 1),
                                           phone=f"139{n:08d}", address=f"成都市武侯区幸福路{n}号", region_code="510107")
            made.append(service.create_person(ctx, details, []).id)
    return made


def _records() -> pd.DataFrame:
    rows = [{"unique_id": f"r{n}", "mrn": f"ZY{n:05d}", "name": f"张{n}", "sex_code": "12"[n % 2],
             "birth_date": date(1950 + n % 50, 1 + n % 12, 1).isoformat(), "phone": f"139{n:08d}",
             "address": f"成都市武侯区幸福路{n}号", "region_code": "510107", "id_system": None, "id_number": None}
            for n in range(UNMATCHED.stop)]
    return pd.DataFrame(rows, dtype=object)


def _decisions(people: list[str]) -> pd.DataFrame:
    comparison = json.dumps({"name": {"level": 3, "weight": 4.5}})
    rows = [(f"r{n}", people[n if n < LINKS - 1 else 0], 20.0, 0.9999, comparison, "certain", "model")
            for n in range(LINKS)]
    for n in REVIEWED:
        rows.append((f"r{n}", people[n], 8.0, 0.95, comparison, "probable", "model"))
        rows.append((f"r{n}", people[(n + 1) % PEOPLE], 3.0, 0.6, comparison, "possible", "model"))
    return pd.DataFrame(rows, columns=["record_id", "person_id", "match_weight", "match_probability", "comparison",
                                       "grade", "reason"])


def _apply(platform, people, institution, *, dry_run: bool = False) -> apply.Outcome:
    return apply.apply_decisions(platform, _decisions(people), _records(), pd.DataFrame(), institution, None, "tester",
                                 dry_run)


def _one_by_one(platform, decisions: pd.DataFrame, records: pd.DataFrame, institution: str) -> None:
    """What the step wrote before, row by row, through the service."""
    actor = Actor(kind="system", channel=Channel.BATCH_IMPORT, id="tester", operator="tester", institution_id=institution)
    by_record = records.set_index("unique_id")
    with platform.db.session() as session:
        ctx = platform.ctx(session, actor)
        certain = decisions[decisions["grade"] == "certain"]
        for rid, person_id in certain[["record_id", "person_id"]].itertuples(index=False):
            person = service.resolve(ctx, person_id)
            service.add_identifier(ctx, person, apply.mrn_identifier(institution, by_record.loc[rid, "mrn"]))
            audit.record_access(ctx, person.id, "change", apply.LINK_PURPOSE)
        for rid, person_id, weight, probability, comparison, grade, reason in decisions[
                decisions["grade"] != "certain"].itertuples(index=False):
            candidate = Candidate(person_id=person_id, score=weight, probability=probability, grade=grade,
                                  comparison=json.loads(comparison) | {"reason": reason})
            review.enqueue(ctx, candidate, source="batch", record=apply._record_of(by_record.loc[rid], institution),
                           institution_id=institution)


def _state(platform, institution: str) -> dict:
    """What a hospital's linkage left: identifiers, link events per person, review pairs (records opened)."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        system = f"mrn:{institution}"
        identifiers = {(row.person_id, platform.vault.open(row.value_sealed, f"identifier.{system}"))
                       for row in session.scalars(select(PersonIdentifier).where(PersonIdentifier.system == system))}
        events = dict(session.execute(
            select(AuditEvent.person_id, func.count()).where(AuditEvent.purpose == apply.LINK_PURPOSE,
                                                             AuditEvent.institution_id == institution)
            .group_by(AuditEvent.person_id)).all())
        reviews = set()
        for row in session.scalars(select(MatchReview).where(MatchReview.institution_id == institution)):
            record = review_record(ctx.vault, row.id, row.record_sealed)
            record["identifiers"] = [[s.replace(institution, "*"), v] for s, v in record["identifiers"]]
            reviews.add((row.source, row.status, row.right_person_id, row.score, row.probability, row.grade,
                         row.comparison, json.dumps(record, sort_keys=True, ensure_ascii=False)))
        assert audit.verify_chain(ctx).intact
    return {"identifiers": identifiers, "events": events, "reviews": reviews}


def test_bulk_apply_leaves_what_one_by_one_did_and_a_rerun_adds_nothing(platform, institution, people):
    make_institution(platform, OTHER, uscc="12510000MB7654321X", name="Other Hospital", region_code="510104")
    outcome = _apply(platform, people, institution)
    assert (outcome.new_links, outcome.already_linked, outcome.conflicts) == (LINKS, 0, 0)
    assert outcome.queued == 2 * len(REVIEWED) and outcome.unmatched == len(UNMATCHED)
    assert all(r["review_id"] for r in outcome.reviews)
    _one_by_one(platform, _decisions(people), _records(), OTHER)

    bulk, reference = _state(platform, institution), _state(platform, OTHER)
    assert len(bulk["identifiers"]) == LINKS and bulk["identifiers"] == reference["identifiers"]
    assert len(bulk["events"]) == LINKS - 1 and bulk["events"] == reference["events"]  # one event a person
    assert len(bulk["reviews"]) == 2 * len(REVIEWED) and bulk["reviews"] == reference["reviews"]

    # The resident sees the link in their access log, as before.
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        for person_id in (people[0], people[7], people[LINKS - 2]):
            page = audit.access_log_for_person(ctx, person_id)
            linked = [e for e in page.events if e.purpose == apply.LINK_PURPOSE and e.institution_id == institution]
            assert len(linked) == 1 and linked[0].action == "change" and linked[0].actor_id == "tester"

    again = _apply(platform, people, institution)
    assert (again.new_links, again.queued, again.conflicts, again.already_linked) == (0, 0, 0, LINKS)
    assert {r["status"] for r in again.reviews} == {"already_queued"}
    assert _state(platform, institution) == bulk

    dry = _apply(platform, people, institution, dry_run=True)
    assert (dry.new_links, dry.queued, dry.already_linked) == (0, 0, LINKS)


def test_dry_run_writes_nothing(platform, institution, people):
    dry = _apply(platform, people, institution, dry_run=True)
    assert (dry.new_links, dry.queued, dry.conflicts) == (LINKS, 2 * len(REVIEWED), 0)
    assert {link["status"] for link in dry.links} == {"linked"}
    assert _state(platform, institution) == {"identifiers": set(), "events": {}, "reviews": set()}


def _bind(platform, person_id: str, institution: str, mrn: str) -> None:
    """A desk (or the API) binding a hospital number, in its own transaction."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        service.add_identifier(ctx, service.resolve(ctx, person_id), apply.mrn_identifier(institution, mrn))


def test_a_number_bound_to_someone_else_is_a_conflict_never_overwritten(platform, institution, people, monkeypatch):
    # Between runs: the desk binds r10's number to another person first.
    _bind(platform, people[250], institution, "ZY00010")
    # During the run, after the step looked the numbers up and before it writes: r20's number is bound
    # elsewhere. PostgreSQL: committed by another transaction then (the bulk insert yields to it);
    # SQLite has one writer at a time, so there the number is bound before and the look-up made stale.
    racing = platform.db.engine.dialect.name == "postgresql"
    if not racing:
        _bind(platform, people[251], institution, "ZY00020")
    real_holders, real_add = apply._holders, persons.add_identifiers
    calls = []

    def stale_holders(session, blind_indexes):
        found = real_holders(session, blind_indexes)
        if not calls:
            calls.append(1)
            key = apply.mrn_identifier(institution, "ZY00020").blind_index(platform.ctx(session, Actor.system()))
            found.pop(key, None)
        return found

    def add_while_racing(ctx, bindings):
        if racing:
            _bind(platform, people[251], institution, "ZY00020")
        return real_add(ctx, bindings)

    monkeypatch.setattr(apply, "_holders", stale_holders)
    monkeypatch.setattr(persons, "add_identifiers", add_while_racing)
    outcome = _apply(platform, people, institution)
    status = {link["record_id"]: (link["status"], link["person_id"]) for link in outcome.links}
    assert status["r10"] == ("conflict", people[250]) and status["r20"] == ("conflict", people[251])
    assert (outcome.new_links, outcome.conflicts) == (LINKS - 2, 2)
    state = _state(platform, institution)
    assert (people[250], "ZY00010") in state["identifiers"] and (people[251], "ZY00020") in state["identifiers"]
    assert (people[10], "ZY00010") not in state["identifiers"] and (people[20], "ZY00020") not in state["identifiers"]
    assert people[10] not in state["events"] and people[20] not in state["events"]  # nothing changed for them

    monkeypatch.undo()
    again = _apply(platform, people, institution)
    assert (again.new_links, again.conflicts, again.already_linked) == (0, 2, LINKS - 2)
