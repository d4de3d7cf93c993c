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
from ...kit.codes import Channel
from ...kit.context import Actor, Ctx
from ...kit.errors import Conflict
from .. import persons, repository, review
from ..bulk import held_identifiers
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


def apply_decisions(platform: LinkPlatform, decisions: pd.DataFrame, records: pd.DataFrame, index: pd.DataFrame, institution_id: str,
           job_id: str | None, operator: str, dry_run: bool) -> Outcome:
    """Write the certain links and queue the rest, in one transaction.

    Idempotent: an MRN already held by the chosen person is counted as already linked, one held by
    another person is a conflict (left alone), and a (record, person) pair already open in the
    queue for this institution is not queued again.
    """
    outcome = Outcome()
    by_record = records.set_index("unique_id")
    actor = Actor(kind="system", channel=Channel.BATCH_IMPORT, id=operator, operator=operator,
                  institution_id=institution_id)
    certain = decisions[decisions["grade"] == "certain"].drop_duplicates("record_id")
    queued = decisions[(decisions["grade"] != "certain") & ~decisions["record_id"].isin(certain["record_id"])]
    with platform.db.session() as session:
        ctx = platform.ctx(session, actor)
        mrn_of = by_record["mrn"].to_dict()
        keys = {rid: mrn_identifier(institution_id, mrn_of[rid]).blind_index(ctx) for rid in by_record.index}
        holders = _holders(session, list(keys.values()))
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
            record = _record_of(row, institution_id)
            for person_id, weight, probability, comparison, grade, reason in group[
                    ["person_id", "match_weight", "match_probability", "comparison", "grade", "reason"]
            ].itertuples(index=False):
                review_id, status = None, "queued"
                if (row["mrn"], person_id) in open_pairs:
                    review_id, status = open_pairs[(row["mrn"], person_id)], "already_queued"
                elif not dry_run:
                    candidate = Candidate(person_id=person_id, score=float(weight), probability=float(probability),
                                          grade=grade, comparison=json.loads(comparison) | {"reason": reason})
                    review_id = review.enqueue(ctx, candidate, source="batch", record=record,
                                               institution_id=institution_id, link_job_id=job_id).id
                    outcome.queued += 1
                else:
                    outcome.queued += 1
                outcome.reviews.append({"record_id": rid, "person_id": person_id, "match_weight": weight,
                                        "match_probability": probability, "grade": grade, "review_id": review_id,
                                        "status": status})
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


def _link_one(ctx: Ctx, holder_id: str | None, person_id: str, identifier: Identifier, dry_run: bool) -> tuple[str, str]:
    """Bind one MRN (``mpi.add_identifier``): ``(status, person id)`` with status linked,
    already_linked (held by this person, e.g. an earlier run) or conflict (held by someone else,
    left alone for a person to look at)."""
    person = persons.resolve(ctx, person_id)
    if holder_id is not None:
        holder = persons.resolve(ctx, holder_id)
        return ("already_linked" if holder.id == person.id else "conflict"), holder.id
    if dry_run:
        return "linked", person.id
    try:
        persons.add_identifier(ctx, person, identifier)
    except Conflict:  # bound a moment ago by someone else (a desk scan, the API)
        holder = persons.find_by_identifier(ctx, identifier)
        return "conflict", holder.id if holder else person.id
    audit.record_access(ctx, person.id, "change", LINK_PURPOSE)
    return "linked", person.id


def _holders(session: Session, blind_indexes: list[str]) -> dict[str, str]:
    """blind index -> person id, for the MRNs already linked (earlier runs, the API, desk scans)."""
    held = held_identifiers(session.connection(), blind_indexes)
    if not held:
        return {}
    return repository.holders_of(session, list(held))


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


def _record_of(row: pd.Series, institution_id: str) -> Record:
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

