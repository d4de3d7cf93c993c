"""The review queue of the master index: candidate pairs the matcher could not decide.

Probable and possible matches, from the real-time matcher and from batch linkage, wait here for an
operator, who sees both sides masked and accepts (link or merge) or rejects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, bindparam, case, false, func, insert, select, update
from sqlalchemy.orm import aliased

from ..accounts import service as accounts
from ..audit import service as audit
from ..identity.service import mask_name, mask_phone
from ..institutions import service as institutions
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Conflict, Invalid, NotFound, field_error
from ..kit.roles import Role
from . import lookups, xref
from . import persons as mpi
from .matching import Candidate, Record
from .models import MatchReview, Merge, Person
from .sealed import review_context, review_record


def _record_json(record: Record) -> str:
    return json.dumps({
        "name": record.name, "sex": record.sex,
        "birth_date": record.birth_date.isoformat() if record.birth_date else None,
        "phone": record.phone, "address": record.address, "region_code": record.region_code,
        "document": [record.document.system, record.document.value] if record.document else None,
        "identifiers": [[i.system, i.value] for i in record.identifiers],
    }, ensure_ascii=False, separators=(",", ":"))


def enqueue(ctx: Ctx, candidate: Candidate, *, source: str, record: Record | None = None,
            left_person_id: str | None = None, institution_id: str | None = None,
            link_job_id: str | None = None) -> MatchReview:
    """Queue one undecided pair: a submitted ``record`` (sealed) or a person of the index
    (``left_person_id``) against ``candidate``'s person."""
    if (record is None) == (left_person_id is None):
        raise ValueError("a review pairs either a submitted record or a person with the candidate")
    row = MatchReview(
        source=source, link_job_id=link_job_id, institution_id=institution_id,
        left_person_id=left_person_id,
        record_sealed=None,
        right_person_id=candidate.person_id, score=candidate.score, probability=candidate.probability,
        grade=candidate.grade, comparison=json.dumps(candidate.comparison, separators=(",", ":")),
    )
    ctx.session.add(row)
    ctx.session.flush()  # the id binds the sealed record to this row
    if record is not None:
        row.record_sealed = ctx.vault.seal(_record_json(record), review_context(row.id))
    return row


def enqueue_records(ctx: Ctx, pairs: list[tuple[Candidate, Record]], *, source: str, institution_id: str | None,
                    link_job_id: str | None = None) -> list[int]:
    """``enqueue`` of many submitted records at once (batch linkage), in bulk: the rows in one
    batched insert that answers their ids, then each record sealed to its row's id, in one batched
    update. Returns the review ids in the order of ``pairs``."""
    if not pairs:
        return []
    table = MatchReview.__table__
    now = utcnow()
    rows = [{"source": source, "link_job_id": link_job_id, "institution_id": institution_id, "left_person_id": None,
             "record_sealed": None, "right_person_id": c.person_id, "score": c.score, "probability": c.probability,
             "grade": c.grade, "comparison": json.dumps(c.comparison, separators=(",", ":")), "status": "open",
             "created_at": now} for c, _ in pairs]
    ids = list(ctx.session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
    sealer = ctx.vault.pinned()
    ctx.session.execute(
        update(table).where(table.c.id == bindparam("review_id")).values(record_sealed=bindparam("sealed")),
        [{"review_id": review_id, "sealed": sealer.seal(_record_json(record), review_context(review_id))}
         for review_id, (_, record) in zip(ids, pairs)])
    return ids


# -- the queue, as operators see it ----------------------------------------------------------------
#
# Who reaches a review (``reviews_in_reach``; anything else answers 404, as a missing review does):
# - a platform admin (and the platform itself, CLI and batch jobs): every review;
# - a regional operator: the reviews of their region: the submitting institution's region, or,
#   for a review without an institution (a registration, two people of the index), the region of
#   the index's person;
# - an institution admin: the submitted-record reviews of their own institution (linking its own
#   patient numbers is its own knowledge); deciding whether two people of the index are one (a
#   merge) stays with the commission.

REVIEW_PURPOSE = "mpi.review"
STATUSES = ("open", "accepted", "rejected")
SOURCES = ("realtime", "batch", "registration")
FIELDS = ("name", "sex", "birth_date", "phone", "address", "region_code")


@dataclass(frozen=True)
class Side:
    """One side of a review, masked: a submitted record or a person of the index."""

    kind: str  # record | person
    person_id: str | None
    ehc_id: str | None
    card_status: str | None
    fields: dict[str, str | None]
    identifiers: list[tuple[str, str]]  # (system, masked value)


@dataclass(frozen=True)
class Decision:
    review: MatchReview
    linked: list[str]  # identifier systems bound to the person (a record review)
    merge: Merge | None  # the merge made (a person review)


def _operator_region(ctx: Ctx) -> str | None:
    return accounts.staff_region(ctx.session, ctx.actor)


def _reach(ctx: Ctx) -> Select:
    """The reviews ``ctx.actor`` reaches, as a query."""
    query = select(MatchReview)
    actor = ctx.actor
    if institutions.reaches_everywhere(actor):
        return query
    if actor.kind == "staff" and Role.REGIONAL_OPERATOR.value in actor.roles:
        region = _operator_region(ctx)
        if not region:
            return query.where(false())
        right = aliased(Person)
        region_of = func.coalesce(institutions.region_of_institution(MatchReview.institution_id), right.region_code)
        return (query.join(right, right.id == MatchReview.right_person_id)
                .where(region_of.like(institutions.region_like(region))))
    own = institutions.own_institution(actor)
    if own and Role.INSTITUTION_ADMIN.value in actor.roles:
        return query.where(MatchReview.institution_id == own, MatchReview.left_person_id.is_(None))
    return query.where(false())


def list_reviews(ctx: Ctx, *, status: str | None = None, source: str | None = None,
                 institution_id: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[MatchReview], int]:
    """Reviews in reach, open ones first (oldest waiting first), then decided ones (latest first)."""
    query = _reach(ctx)
    if status:
        if status not in STATUSES:
            raise Invalid(f"status is one of {', '.join(STATUSES)}.", code="review_filter_invalid")
        query = query.where(MatchReview.status == status)
    if source:
        if source not in SOURCES:
            raise Invalid(f"source is one of {', '.join(SOURCES)}.", code="review_filter_invalid")
        query = query.where(MatchReview.source == source)
    if institution_id:
        query = query.where(MatchReview.institution_id == institution_id)
    total = ctx.session.scalar(select(func.count()).select_from(query.subquery()))
    waiting = case((MatchReview.status == "open", 0), else_=1)
    ordered = query.order_by(waiting, case((MatchReview.status == "open", MatchReview.created_at), else_=None),
                             MatchReview.decided_at.desc(), MatchReview.id)
    return list(ctx.session.scalars(ordered.limit(limit).offset(offset))), total


def get_review(ctx: Ctx, review_id: int) -> MatchReview:
    review = ctx.session.scalar(_reach(ctx).where(MatchReview.id == review_id))
    if review is None:
        raise NotFound("No such review.", code="review_not_found")
    return review


def sides(ctx: Ctx, review: MatchReview) -> tuple[Side, Side]:
    """Both sides, masked, for a reviewer to compare. Opening them is an audited read."""
    left = (_record_side(ctx, review) if review.record_sealed is not None
            else _person_side(ctx, mpi.resolve(ctx, review.left_person_id)))
    return left, _person_side(ctx, mpi.resolve(ctx, review.right_person_id))


def comparison(review: MatchReview) -> dict:
    try:
        return json.loads(review.comparison or "{}")
    except ValueError:
        return {}


def accept(ctx: Ctx, review_id: int, *, note: str | None = None, keep: str | None = None) -> Decision:
    """Accept a pair as one person: a submitted record's identifiers (its MRN, old card, social
    security or insurance number) are bound to the index's person; two people of the index are
    merged (``keep``: "left" or "right" survives; by default the one holding a card, else the right).

    The record's document number is not bound: documents enter the index only through registration
    with real-name verification."""
    review = _claim(ctx, review_id, "accepted", note)
    right = mpi.resolve(ctx, review.right_person_id)
    if review.record_sealed is not None:
        record = _open_record(ctx, review)
        linked = []
        for system, value in record.get("identifiers") or []:
            if mpi.add_identifier(ctx, right, mpi.Identifier(system, value)):
                linked.append(system)
        audit.record_access(ctx, right.id, "change", REVIEW_PURPOSE)
        return Decision(review, linked, None)
    left = mpi.resolve(ctx, review.left_person_id)
    if left.id == right.id:  # already one person (merged since the review was queued)
        return Decision(review, [], None)
    source, target = _merge_order(ctx, left, right, keep)
    merge = mpi.merge(ctx, source, target, f"review {review.id}: {note or 'accepted'}", review_id=review.id)
    return Decision(review, [], merge)


def reject(ctx: Ctx, review_id: int, reason: str) -> Decision:
    """Two different people: nothing is linked. The reason is kept with the review."""
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("Say why the pair is not one person.", code="reason_required",
                      errors=[field_error("reason", "reason_required", "A reason is required.")])
    review = _claim(ctx, review_id, "rejected", reason)
    audit.record_access(ctx, review.right_person_id, "change", REVIEW_PURPOSE)
    return Decision(review, [], None)


def _claim(ctx: Ctx, review_id: int, status: str, note: str | None) -> MatchReview:
    """Decide a review exactly once: the open -> decided update is conditional, so of two concurrent
    decisions one wins and the other answers 409 (PostgreSQL makes the second wait for the first)."""
    review = get_review(ctx, review_id)
    done = ctx.session.execute(
        update(MatchReview).where(MatchReview.id == review.id, MatchReview.status == "open")
        .values(status=status, decided_by=ctx.actor.id or ctx.actor.kind, decided_at=utcnow(),
                note=(note or "").strip() or None)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        ctx.session.refresh(review)
        raise Conflict(f"This review has been decided already ({review.status}).", code="review_already_decided",
                       status_now=review.status)
    ctx.session.refresh(review)
    return review


def _merge_order(ctx: Ctx, left: Person, right: Person, keep: str | None) -> tuple[Person, Person]:
    if keep not in (None, "left", "right"):
        raise Invalid("keep is left or right.", code="keep_invalid",
                      errors=[field_error("keep", "keep_invalid", "left or right")])
    if keep is None:
        keep = "left" if lookups.card_of_person(ctx, left) and not lookups.card_of_person(ctx, right) else "right"
    return (right, left) if keep == "left" else (left, right)


def _open_record(ctx: Ctx, review: MatchReview) -> dict:
    return review_record(ctx.vault, review.id, review.record_sealed)


def _record_side(ctx: Ctx, review: MatchReview) -> Side:
    record = _open_record(ctx, review)
    identifiers = [tuple(pair) for pair in record.get("identifiers") or []]
    if record.get("document"):
        identifiers.insert(0, tuple(record["document"]))
    birth = record.get("birth_date")
    return Side("record", None, None, None,
                masked_fields(record.get("name"), record.get("sex"), date.fromisoformat(birth) if birth else None,
                              record.get("phone"), record.get("address"), record.get("region_code")),
                [(s, xref.mask_value(mpi.Identifier(s, v))) for s, v in identifiers])


def _person_side(ctx: Ctx, person: Person) -> Side:
    details = mpi.demographics(ctx, person, purpose=REVIEW_PURPOSE)
    identifiers = mpi.identifiers_of(ctx, person, purpose=REVIEW_PURPOSE)
    card = lookups.card_of_person(ctx, person)
    return Side("person", person.id, card.ehc_id if card else None, card.status if card else None,
                masked_fields(details.name, details.sex, details.birth_date, details.phone, details.address,
                              details.region_code),
                [(i.system, xref.mask_value(i)) for i in identifiers])


def masked_fields(name: str | None, sex: str | None, birth_date: date | None, phone: str | None,
                  address: str | None, region_code: str | None) -> dict[str, str | None]:
    """What a reviewer sees: the name with its inner characters starred, the birth date to the month,
    the phone's first 3 and last 4 digits, the address's first 6 characters (about the district)."""
    return {
        "name": mask_name(name) if name else None,
        "sex": sex,
        "birth_date": birth_date.strftime("%Y-%m-**") if birth_date else None,
        "phone": mask_phone(phone) if phone else None,
        "address": mask_address(address) if address else None,
        "region_code": region_code,
    }


def mask_address(address: str) -> str:
    text = address.strip()
    keep = min(6, max(0, len(text) - 2))
    return text[:keep] + "*" * (len(text) - keep)
