"""A hospital submits a patient: match against the index, and (if asked) link or queue for review.

``submit(ctx, record, link=True)``:

* the record's local identifiers (its MRN, ``mrn:<institution>``) already lead to someone: nothing
  new is done, the answer says ``already_linked`` (a retry of a request that linked lands here);
* exactly one candidate is ``certain``: its person gets the identifiers (``xref.bind``: the caller's
  authority over those numbers is checked there) and the answer says ``linked``;
* otherwise every ``probable`` or ``possible`` candidate (and several ``certain`` ones, which a person
  must tell apart) is queued for review with source ``realtime``, unless the same institution already
  has an open review of the same record against the same person (a retry queues nothing twice);
  the answer says ``queued``;
* no candidate: ``no_match``.

``screen_registration(ctx, person, details, document)``: a person just created by a registration is
compared with everyone else in the index; each ``certain`` or ``probable`` candidate is queued for
review as a possible duplicate (person against person). ``possible`` ones are not: at registration
they are mostly the applicant's own family (same surname, phone and address, another given name or
birth date), and a queue full of them would bury the real duplicates. A registration never merges on
its own: the new person
holds a verified document, so a "certain" candidate is a person registered before under another
document or none (an unidentified emergency patient, a hospital's list), and which one survives, and
whether they are one at all, is a reviewer's call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...kit.context import Ctx
from ...kit.errors import Invalid, field_error
from .. import persons as mpi
from .. import repository, review, xref
from ..models import MatchReview, Person
from ..sealed import review_record
from ..values import Demographics, Identifier
from . import matcher as matching
from .matcher import Candidate, Record

ACTIONS = ("linked", "already_linked", "queued", "no_match")
QUEUE_AT_MOST = 5  # candidates queued for one record: a reviewer compares a handful, not a crowd


@dataclass
class Outcome:
    candidates: list[Candidate]
    action: str | None = None  # one of ACTIONS when linking was asked
    linked_person: Person | None = None
    review_ids: list[int] = field(default_factory=list)


def submit(ctx: Ctx, record: Record, *, link: bool = False, limit: int = 5) -> Outcome:
    if link and not record.identifiers:
        message = "To link, give the hospital's own number for this patient (e.g. {system: mrn, value: ...})."
        raise Invalid(message, code="link_identifier_required",
                      errors=[field_error("identifiers", "link_identifier_required", message)])
    candidates = matching.match(ctx, record, limit=limit)
    if not link:
        return Outcome(candidates)
    holders = {p.id: p for p in (mpi.find_by_identifier(ctx, i) for i in record.identifiers) if p is not None}
    if holders:
        return Outcome(candidates, "already_linked", linked_person=next(iter(holders.values())))
    certain = [c for c in candidates if c.grade == "certain"]
    if len(certain) == 1:
        person = mpi.resolve(ctx, certain[0].person_id)
        for identifier in record.identifiers:
            xref.bind(ctx, identifier.system, identifier.value, ref=person.id)
        return Outcome(candidates, "linked", linked_person=person)
    undecided = [c if c.grade != "certain" else replace(c, grade="probable") for c in candidates][:QUEUE_AT_MOST]
    if not undecided:
        return Outcome(candidates, "no_match")
    reviews = [_queue_once(ctx, record, candidate) for candidate in undecided]
    return Outcome(candidates, "queued", review_ids=[r.id for r in reviews])


def _identifiers_json(record: Record) -> list[list[str]]:
    return [[i.system, i.value] for i in record.identifiers]


def _queue_once(ctx: Ctx, record: Record, candidate: Candidate) -> MatchReview:
    institution_id = ctx.actor.institution_id
    wanted = _identifiers_json(record)
    open_reviews = repository.open_reviews_sealed(ctx.session, source="realtime", institution_id=institution_id,
                                                 right_person_id=candidate.person_id)
    for row in open_reviews:
        earlier = review_record(ctx.vault, row.id, row.record_sealed)
        if earlier.get("identifiers") == wanted:
            return row
    return review.enqueue(ctx, candidate, source="realtime", record=record, institution_id=institution_id)


def screen_registration(ctx: Ctx, person: Person, details: Demographics,
                        document: Identifier | None) -> list[MatchReview]:
    """Queue the people a new registration may duplicate (see the module docstring)."""
    record = Record(name=details.name, sex=details.sex, birth_date=details.birth_date, phone=details.phone,
                    address=details.address, region_code=details.region_code, document=document)
    # The document is the new person's own, written a moment ago: no need to look its holder up.
    candidates = matching.match(ctx, record, limit=QUEUE_AT_MOST, exclude=person.id,
                                held_by=person.id if document is not None else None)
    return [review.enqueue(ctx, candidate, source="registration", left_person_id=person.id,
                           institution_id=ctx.actor.institution_id)
            for candidate in candidates if candidate.grade in ("certain", "probable")]
