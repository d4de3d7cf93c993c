"""Master index API: thin. Cross-references (bind, unbind, look up), the review queue, merges."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from ..identity import mask_name, mask_phone
from ..kit.context import Ctx
from . import review, xref
from . import service as mpi
from .auth import MatchReviewer, MergeOperator, XrefBinder, XrefReader
from .models import MatchReview, Merge, Person
from .schemas import (
    AcceptIn,
    BindIn,
    BoundOut,
    DecisionOut,
    HolderOut,
    IdentifierOut,
    MergeIn,
    MergeOut,
    MoveOut,
    PersonOut,
    RejectIn,
    ReviewDetailOut,
    ReviewOut,
    ReviewPage,
    SideOut,
    UnbindIn,
    UndoIn,
)

router = APIRouter(prefix="/api/v1/mpi", tags=["master index"])


def _person_out(ctx: Ctx, person: Person, card, purpose: str) -> dict:
    details = mpi.demographics(ctx, person, purpose=purpose)
    return {
        "person_id": person.id,
        "ehc_id": card.ehc_id if card else None,
        "card_status": card.status if card else None,
        "holder": HolderOut(name=mask_name(details.name) if details.name else None, sex=person.sex,
                            birth_year=person.birth_year, region_code=person.region_code,
                            phone=mask_phone(details.phone) if details.phone else None),
    }


@router.post("/identifiers", response_model=BoundOut, status_code=201,
             summary="Bind your patient number (or old card, social security, insurance number) to a person")
def bind(body: BindIn, ctx: XrefBinder, response: Response) -> BoundOut:
    scan = (xref.Scan(body.code, body.scene, body.channel, body.terminal_id, body.department)
            if body.code is not None else None)
    bound = xref.bind(ctx, body.system, body.value, scan=scan, ref=body.ehc_id)
    response.status_code = 201 if bound.created else 200
    return BoundOut(**_person_out(ctx, bound.person, bound.card, xref.IDENTIFIERS_PURPOSE),
                    system=bound.identifier.system, created=bound.created, use_id=bound.use_id)


@router.delete("/identifiers", status_code=204, summary="Unbind a wrong link (reason required)")
def unbind(body: UnbindIn, ctx: XrefBinder) -> Response:
    xref.unbind(ctx, body.system, body.value, body.ehc_id, body.reason)
    return Response(status_code=204)


@router.get("/persons", response_model=PersonOut, summary="Find the person an identifier leads to")
def lookup(ctx: XrefReader, system: str = Query(max_length=40), value: str = Query(max_length=64)) -> PersonOut:
    person, card = xref.lookup(ctx, system, value)
    return PersonOut(**_person_out(ctx, person, card, xref.LOOKUP_PURPOSE))


@router.get("/persons/{ref}/identifiers", response_model=list[IdentifierOut],
            summary="A person's cross-references, as far as you may see them")
def identifiers(ref: str, ctx: XrefReader) -> list[IdentifierOut]:
    person, _ = xref.person_for_ref(ctx, ref)
    return [IdentifierOut(system=s, value=v) for s, v in xref.visible_identifiers(ctx, person)]


# -- the review queue ---------------------------------------------------------------------------------

def review_out(row: MatchReview) -> dict:
    return {
        "id": row.id, "source": row.source, "status": row.status, "grade": row.grade, "score": row.score,
        "probability": row.probability, "institution_id": row.institution_id, "link_job_id": row.link_job_id,
        "pair": "record" if row.record_sealed is not None else "persons", "created_at": row.created_at,
        "decided_by": row.decided_by, "decided_at": row.decided_at, "note": row.note,
    }


def side_out(side: review.Side) -> SideOut:
    return SideOut(kind=side.kind, person_id=side.person_id, ehc_id=side.ehc_id, card_status=side.card_status,
                   fields=side.fields, identifiers=[IdentifierOut(system=s, value=v) for s, v in side.identifiers])


@router.get("/reviews", response_model=ReviewPage, summary="The review queue: open pairs first")
def list_reviews(ctx: MatchReviewer, status: str | None = None, source: str | None = None,
                 institution_id: str | None = None, limit: int = Query(50, ge=1, le=200),
                 offset: int = Query(0, ge=0)) -> ReviewPage:
    rows, total = review.list_reviews(ctx, status=status, source=source, institution_id=institution_id,
                                      limit=limit, offset=offset)
    return ReviewPage(items=[ReviewOut(**review_out(r)) for r in rows], total=total)


@router.get("/reviews/{review_id}", response_model=ReviewDetailOut, summary="One pair, side by side, masked")
def get_review(review_id: int, ctx: MatchReviewer) -> ReviewDetailOut:
    row = review.get_review(ctx, review_id)
    left, right = review.sides(ctx, row)
    return ReviewDetailOut(**review_out(row), left=side_out(left), right=side_out(right),
                           comparison=review.comparison(row))


def _decision_out(decision: review.Decision) -> DecisionOut:
    return DecisionOut(review=ReviewOut(**review_out(decision.review)), linked=decision.linked,
                       merge_id=decision.merge.id if decision.merge else None)


@router.post("/reviews/{review_id}/accept", response_model=DecisionOut,
             summary="One person: link the record's identifiers, or merge the two people")
def accept(review_id: int, ctx: MatchReviewer, body: AcceptIn | None = None) -> DecisionOut:
    body = body or AcceptIn()
    return _decision_out(review.accept(ctx, review_id, note=body.note, keep=body.keep))


@router.post("/reviews/{review_id}/reject", response_model=DecisionOut, summary="Two different people")
def reject(review_id: int, body: RejectIn, ctx: MatchReviewer) -> DecisionOut:
    return _decision_out(review.reject(ctx, review_id, body.reason))


# -- merges -------------------------------------------------------------------------------------------

def merge_out(ctx: Ctx, merge: Merge) -> MergeOut:
    return MergeOut(
        id=merge.id, source_person_id=merge.source_person_id, target_person_id=merge.target_person_id,
        reason=merge.reason, actor_kind=merge.actor_kind, actor_id=merge.actor_id, review_id=merge.review_id,
        at=merge.at, undone_at=merge.undone_at, undone_by=merge.undone_by, undo_reason=merge.undo_reason,
        moves=[MoveOut(kind=m.kind, ref=m.ref) for m in mpi.moves_of(ctx, merge)],
    )


@router.post("/merges", response_model=MergeOut, status_code=201, summary="Merge two people of the index")
def merge(body: MergeIn, ctx: MergeOperator) -> MergeOut:
    return merge_out(ctx, xref.merge_people(ctx, body.source, body.target, body.reason))


@router.get("/merges/{merge_id}", response_model=MergeOut, summary="A merge and everything it moved")
def get_merge(merge_id: int, ctx: MergeOperator) -> MergeOut:
    return merge_out(ctx, xref.visible_merge(ctx, merge_id))


@router.post("/merges/{merge_id}/undo", response_model=MergeOut, summary="Undo a merge: move everything back")
def undo(merge_id: int, body: UndoIn, ctx: MergeOperator) -> MergeOut:
    return merge_out(ctx, xref.undo_merge(ctx, merge_id, body.reason))
