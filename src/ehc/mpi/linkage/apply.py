"""Step 5: apply the decisions in one transaction: bind the certain MRNs, queue the rest for review.
Idempotent: a re-run links nothing twice and queues no pair twice."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
from sqlalchemy.orm import Session

from ...audit import service as audit
from ...kit.clock import utcnow
from ...kit.codes import Channel
from ...kit.context import Actor, Ctx
from .. import persons, repository, review
from ..matching import Candidate, Record
from ..sealed import review_record
from ..values import Identifier
from .common import LinkPlatform


@dataclass
class Outcome:
    """What applying the decisions did (or would do, in a dry run), for the outputs and the counts."""

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


def mrn_identifier(institution_id: str, mrn: str) -> Identifier:
    return Identifier(MRN_SYSTEM.format(institution=institution_id), mrn)


def outcome_without_database(decisions: pd.DataFrame, records: pd.DataFrame) -> Outcome:
    """What a dry run would report, decided from the scores alone (no MRN was linked before, no
    pair is waiting in the queue): for benchmarks and for lists linked away from the database."""
    outcome = Outcome()
    certain = decisions[decisions["grade"] == "certain"].drop_duplicates("record_id")
    queued = decisions[(decisions["grade"] != "certain") & ~decisions["record_id"].isin(certain["record_id"])]
    outcome.links = [{"record_id": rid, "person_id": pid, "match_weight": w, "match_probability": p,
                      "reason": reason, "status": "linked"}
                     for rid, pid, w, p, reason in certain[["record_id", "person_id", "match_weight",
                                                            "match_probability", "reason"]].itertuples(index=False)]
    outcome.reviews = [{"record_id": rid, "person_id": pid, "match_weight": w, "match_probability": p, "grade": g,
                        "review_id": None, "status": "queued"}
                       for rid, pid, w, p, g in queued[["record_id", "person_id", "match_weight", "match_probability",
                                                        "grade"]].itertuples(index=False)]
    outcome.new_links, outcome.queued = len(outcome.links), len(outcome.reviews)
    acted = set(certain["record_id"]) | set(queued["record_id"])
    outcome.unmatched_ids = [rid for rid in records["unique_id"] if rid not in acted]
    return outcome


def certain_of(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions to link: a row's certain pair (its first, should there be several)."""
    return decisions[decisions["grade"] == "certain"].drop_duplicates("record_id")


def apply_decisions(platform: LinkPlatform, decisions: pd.DataFrame, records: pd.DataFrame, index: pd.DataFrame, institution_id: str,
           job_id: str | None, operator: str, dry_run: bool) -> Outcome:
    """Write the certain links and queue the rest, in one transaction, in bulk.

    Idempotent: an MRN already held by the chosen person is counted as already linked, one held by
    another person is a conflict (left alone), and a (record, person) pair already open in the
    queue for this institution is not queued again. An MRN bound by someone else between the
    look-up and the write (a desk scan, the API) is a conflict too: the bulk insert yields to it.

    The writes: the MRN identifiers in one bulk insert (``mpi.persons.add_identifiers``: COPY into a
    staging table on PostgreSQL, an executemany on SQLite), the review pairs in one batched insert
    (``mpi.review.enqueue_records``), and one audit event per linked person (purpose
    ``mpi.identifiers``, the resident's access log), inserted already chained as the transaction's
    last write (``audit.record_changes``, which holds the chain lock until the commit).
    """
    outcome = Outcome()
    by_record = records.set_index("unique_id")
    actor = Actor(kind="system", channel=Channel.BATCH_IMPORT, id=operator, operator=operator,
                  institution_id=institution_id)
    certain = certain_of(decisions)
    queued = decisions[(decisions["grade"] != "certain") & ~decisions["record_id"].isin(certain["record_id"])]
    with platform.db.session() as session:
        ctx = platform.ctx(session, actor)
        identifier_of = {rid: mrn_identifier(institution_id, mrn) for rid, mrn in by_record["mrn"].items()}
        keys = {rid: identifier.blind_index(ctx) for rid, identifier in identifier_of.items()}
        holders = _holders(session, list(keys.values()))
        linked_now = _link_certain(ctx, outcome, certain, identifier_of, keys, holders, dry_run)
        # Rows linked on an earlier run whose pair is no longer certain still count as linked.
        open_pairs = _open_batch_reviews(ctx, institution_id)
        to_queue: list[tuple[Candidate, Record, dict]] = []
        # Plain tuples grouped by record (in order of first appearance): a pandas group per record cost
        # about a millisecond each, seconds for a large list.
        groups: dict[str, list[tuple]] = {}
        for rid, *pair in queued[["record_id", "person_id", "match_weight", "match_probability", "comparison",
                                  "grade", "reason"]].itertuples(index=False, name=None):
            groups.setdefault(rid, []).append(tuple(pair))
        listed = by_record.loc[list(groups)].to_dict("index") if groups else {}
        for rid, group in groups.items():
            if keys[rid] in holders:
                if rid not in linked_now:
                    outcome.already_linked += 1
                    outcome.links.append({"record_id": rid, "person_id": holders[keys[rid]], "match_weight": None,
                                          "match_probability": None, "reason": "earlier run", "status": "already_linked"})
                    linked_now.add(rid)
                continue
            row = listed[rid]
            record = _record_of(row, institution_id)
            for person_id, weight, probability, comparison, grade, reason in group:
                entry = {"record_id": rid, "person_id": person_id, "match_weight": weight,
                         "match_probability": probability, "grade": grade, "review_id": None, "status": "queued"}
                if (row["mrn"], person_id) in open_pairs:
                    entry["review_id"], entry["status"] = open_pairs[(row["mrn"], person_id)], "already_queued"
                else:
                    outcome.queued += 1
                    candidate = Candidate(person_id=person_id, score=float(weight), probability=float(probability),
                                          grade=grade, comparison=json.loads(comparison) | {"reason": reason})
                    to_queue.append((candidate, record, entry))
                outcome.reviews.append(entry)
        if not dry_run:
            review_ids = review.enqueue_records(ctx, [(c, r) for c, r, _ in to_queue], source="batch",
                                                institution_id=institution_id, link_job_id=job_id)
            for (_, _, entry), review_id in zip(to_queue, review_ids):
                entry["review_id"] = review_id
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
        else:
            # Last: the chain lock is held from here to the commit.
            linked_people = [link["person_id"] for link in outcome.links if link["status"] == "linked"]
            audit.record_changes(session.connection(), list(dict.fromkeys(linked_people)), LINK_PURPOSE, actor,
                                 at=utcnow(), request_id=ctx.request_id)
    return outcome


def _link_certain(ctx: Ctx, outcome: Outcome, certain: pd.DataFrame, identifier_of: dict[str, Identifier],
                  keys: dict[str, str], holders: dict[str, str], dry_run: bool) -> set[str]:
    """Bind the certain MRNs (``mpi.add_identifier``'s rule, in bulk). Each link's status: linked,
    already_linked (held by this person, e.g. an earlier run) or conflict (held by someone else, left
    alone for a person to look at). Returns the record ids acted on."""
    rows = list(certain[["record_id", "person_id", "match_weight", "match_probability", "reason"]]
                .itertuples(index=False, name=None))
    surviving = persons.resolve_many(ctx, [row[1] for row in rows] + list(holders.values()))
    binding: dict[str, dict] = {}  # blind index -> its link, for the bindings written now
    for rid, person_id, weight, probability, reason in rows:
        person, holder = surviving[person_id], holders.get(keys[rid])
        if holder is not None:
            holder = surviving[holder]
            status = "already_linked" if holder == person else "conflict"
        else:
            status, holder = "linked", person
        link = {"record_id": rid, "person_id": holder, "match_weight": weight, "match_probability": probability,
                "reason": reason, "status": status}
        if status == "linked":
            binding[keys[rid]] = link
        outcome.links.append(link)
    if binding and not dry_run:
        lost = persons.add_identifiers(ctx, [(link["person_id"], identifier_of[link["record_id"]], key)
                                             for key, link in binding.items()])
        if lost:  # bound a moment ago by someone else (a desk scan, the API)
            taken = _holders(ctx.session, list(lost))
            taken_by = persons.resolve_many(ctx, list(taken.values()))
            for key in lost:
                link = binding[key]
                holder = taken_by.get(taken.get(key, ""))
                link["status"] = "already_linked" if holder == link["person_id"] else "conflict"
                link["person_id"] = holder or link["person_id"]
    for link in outcome.links:
        outcome.new_links += link["status"] == "linked"
        outcome.already_linked += link["status"] == "already_linked"
        outcome.conflicts += link["status"] == "conflict"
    return {link["record_id"] for link in outcome.links}


def _holders(session: Session, blind_indexes: list[str]) -> dict[str, str]:
    """blind index -> person id, for the MRNs already linked (earlier runs, the API, desk scans)."""
    return repository.holders_of(session, blind_indexes)


def _open_batch_reviews(ctx: Ctx, institution_id: str) -> dict[tuple[str, str], int]:
    """(MRN, person id) -> review id of the pairs already waiting from earlier batch runs."""
    system = MRN_SYSTEM.format(institution=institution_id)
    found: dict[tuple[str, str], int] = {}
    for row in repository.open_reviews_sealed(ctx.session, source="batch", institution_id=institution_id):
        record = review_record(ctx.vault, row.id, row.record_sealed)
        for id_system, value in record.get("identifiers") or []:
            if id_system == system:
                found[(value, row.right_person_id)] = row.id
    return found


def _record_of(row: pd.Series | dict, institution_id: str) -> Record:
    def value(name: str) -> object:
        item = row[name]
        return None if item is None or (isinstance(item, float) and math.isnan(item)) else item

    document = Identifier(row["id_system"], row["id_number"]) if value("id_number") else None
    return Record(
        name=value("name"), sex=value("sex_code"),
        birth_date=date.fromisoformat(row["birth_date"]) if value("birth_date") else None,
        phone=value("phone"), address=value("address"), region_code=value("region_code"),
        document=document, identifiers=(mrn_identifier(institution_id, row["mrn"]),),
    )

