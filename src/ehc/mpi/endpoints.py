"""Master index API: thin. Cross-references (bind, unbind, look up), real-time matching, the review
queue, merges.

Real-time matching: a hospital submits a patient and gets graded candidates (masked), and may ask to
link its own number to a certain match or queue the undecided ones for review. Who: the hospital at
work, as for binding its numbers (``auth.py``): its systems over the signed API and its window,
doctor, nurse and admin staff. Not family doctors or cashiers (they scan codes, they do not manage
identities), nor the commission's roles (they have no patients to submit).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from ..identity import service as identity
from ..kit.context import Ctx
from ..kit.errors import Invalid, field_error
from ..qr import service as qr
from . import service as mpi
from .auth import MatchReviewer, MatchSubmitter, MergeOperator, XrefBinder, XrefReader
from .models import MatchReview, Merge, Person
from .schemas import (
    AcceptIn,
    BindIn,
    BoundOut,
    CandidateOut,
    DecisionOut,
    DocumentIn,
    HolderOut,
    IdentifierIn,
    IdentifierOut,
    MaskedHolderOut,
    MatchIn,
    MatchOut,
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
        "holder": HolderOut(name=identity.mask_name(details.name) if details.name else None, sex=person.sex,
                            birth_year=person.birth_year, region_code=person.region_code,
                            phone=identity.mask_phone(details.phone) if details.phone else None),
    }


def _verify_scan(ctx: Ctx, scan: mpi.Scan, channel: str) -> tuple[mpi.CardRef, int]:
    """The QR domain's online verify path, whole: signature, expiry, revocation, single use; the scan
    is recorded as a card use (``mpi.mpi.bind`` says why)."""
    done = qr.verify(ctx, scan.code, qr.Use(scene=scan.scene, channel=channel, terminal_id=scan.terminal_id,
                                           department=scan.department))
    return done.card, done.use.id


@router.post("/identifiers", response_model=BoundOut, status_code=201,
             summary="Bind your patient number (or old card, social security, insurance number) to a person")
def bind(body: BindIn, ctx: XrefBinder, response: Response) -> BoundOut:
    scan = (mpi.Scan(body.code, body.scene, body.channel, body.terminal_id, body.department)
            if body.code is not None else None)
    bound = mpi.bind(ctx, body.system, body.value, scan=scan, ref=body.ehc_id, verify_scan=_verify_scan)
    response.status_code = 201 if bound.created else 200
    return BoundOut(**_person_out(ctx, bound.person, bound.card, mpi.IDENTIFIERS_PURPOSE),
                    system=bound.identifier.system, created=bound.created, use_id=bound.use_id)


@router.delete("/identifiers", status_code=204, summary="Unbind a wrong link (reason required)")
def unbind(body: UnbindIn, ctx: XrefBinder) -> Response:
    mpi.unbind(ctx, body.system, body.value, body.ehc_id, body.reason)
    return Response(status_code=204)


@router.get("/persons", response_model=PersonOut, summary="Find the person an identifier leads to")
def lookup(ctx: XrefReader, system: str = Query(max_length=40), value: str = Query(max_length=64)) -> PersonOut:
    person, card = mpi.lookup(ctx, system, value)
    return PersonOut(**_person_out(ctx, person, card, mpi.LOOKUP_PURPOSE))


@router.get("/persons/{ref}/identifiers", response_model=list[IdentifierOut],
            summary="A person's cross-references, as far as you may see them")
def identifiers(ref: str, ctx: XrefReader) -> list[IdentifierOut]:
    person, _ = mpi.person_for_ref(ctx, ref)
    return [IdentifierOut(system=s, value=v) for s, v in mpi.visible_identifiers(ctx, person)]


# -- the review queue ---------------------------------------------------------------------------------

def review_out(row: MatchReview) -> dict:
    return {
        "id": row.id, "source": row.source, "status": row.status, "grade": row.grade, "score": row.score,
        "probability": row.probability, "institution_id": row.institution_id, "link_job_id": row.link_job_id,
        "pair": "record" if row.record_sealed is not None else "persons", "created_at": row.created_at,
        "decided_by": row.decided_by, "decided_at": row.decided_at, "note": row.note,
    }


def side_out(side: mpi.ReviewSide) -> SideOut:
    return SideOut(kind=side.kind, person_id=side.person_id, ehc_id=side.ehc_id, card_status=side.card_status,
                   fields=side.fields, identifiers=[IdentifierOut(system=s, value=v) for s, v in side.identifiers])


@router.get("/reviews", response_model=ReviewPage, summary="The review queue: open pairs first")
def list_reviews(ctx: MatchReviewer, status: str | None = None, source: str | None = None,
                 institution_id: str | None = None, limit: int = Query(50, ge=1, le=200),
                 offset: int = Query(0, ge=0)) -> ReviewPage:
    rows, total = mpi.list_reviews(ctx, status=status, source=source, institution_id=institution_id,
                                      limit=limit, offset=offset)
    return ReviewPage(items=[ReviewOut(**review_out(r)) for r in rows], total=total)


@router.get("/reviews/{review_id}", response_model=ReviewDetailOut, summary="One pair, side by side, masked")
def get_review(review_id: int, ctx: MatchReviewer) -> ReviewDetailOut:
    row = mpi.get_review(ctx, review_id)
    left, right = mpi.review_sides(ctx, row)
    return ReviewDetailOut(**review_out(row), left=side_out(left), right=side_out(right),
                           comparison=mpi.review_comparison(row))


def _decision_out(decision: mpi.ReviewDecision) -> DecisionOut:
    return DecisionOut(review=ReviewOut(**review_out(decision.review)), linked=decision.linked,
                       merge_id=decision.merge.id if decision.merge else None)


@router.post("/reviews/{review_id}/accept", response_model=DecisionOut,
             summary="One person: link the record's identifiers, or merge the two people")
def accept(review_id: int, ctx: MatchReviewer, body: AcceptIn | None = None) -> DecisionOut:
    body = body or AcceptIn()
    return _decision_out(mpi.accept_review(ctx, review_id, note=body.note, keep=body.keep))


@router.post("/reviews/{review_id}/reject", response_model=DecisionOut, summary="Two different people")
def reject(review_id: int, body: RejectIn, ctx: MatchReviewer) -> DecisionOut:
    return _decision_out(mpi.reject_review(ctx, review_id, body.reason))


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
    return merge_out(ctx, mpi.merge_people(ctx, body.source, body.target, body.reason))


@router.get("/merges/{merge_id}", response_model=MergeOut, summary="A merge and everything it moved")
def get_merge(merge_id: int, ctx: MergeOperator) -> MergeOut:
    return merge_out(ctx, mpi.visible_merge(ctx, merge_id))


@router.post("/merges/{merge_id}/undo", response_model=MergeOut, summary="Undo a merge: move everything back")
def undo(merge_id: int, body: UndoIn, ctx: MergeOperator) -> MergeOut:
    return merge_out(ctx, mpi.undo_merge(ctx, merge_id, body.reason))


# -- real-time matching ----------------------------------------------------------------------------

def _record(ctx: Ctx, body: MatchIn) -> mpi.Record:
    errors: list[dict] = []
    name = phone = None
    try:
        name = identity.canonical_name(body.name) if body.name else None
    except Invalid as problem:
        errors.extend(problem.errors or [])
    phone = mpi.match_evidence.phone_digits(body.phone) if body.phone else None
    if body.phone and phone is None:
        errors.append(field_error("phone", "phone_malformed", "A phone number has 7 to 12 digits (mobile, or a "
                                                             "landline with its area code)."))
    document = identifiers = None
    try:
        document = _document(body.document) if body.document else None
    except Invalid as problem:
        errors.extend(problem.errors or [field_error("document", problem.code, problem.detail)])
    try:
        identifiers = tuple(_identifier(ctx, i) for i in body.identifiers)
    except Invalid as problem:
        errors.extend(problem.errors or [field_error("identifiers", problem.code, problem.detail)])
    if errors:
        raise Invalid("Some fields of the patient are not valid.", code="match_record_invalid", errors=errors)
    if not document and not (name and (body.birth_date or phone)):
        message = "Give a document number, or a name with a birth date or a phone number."
        raise Invalid(message, code="match_record_too_thin", errors=[field_error("name", "match_record_too_thin",
                                                                                 message)])
    sex = mpi.match_evidence.sex_code(body.sex) if body.sex else None
    return mpi.Record(name=name, sex=sex, birth_date=body.birth_date, phone=phone, address=body.address,
                  region_code=body.region_code, document=document, identifiers=identifiers or ())


def _document(given: DocumentIn) -> mpi.Identifier:
    """A resident ID is read as batch linkage reads it (15 digits converted, a failed check character
    kept: it weighs as one digit off); other kinds are checked as at registration."""
    if given.type.strip().zfill(2) == "01":
        reading, _ = mpi.match_evidence.read_document("01", given.number)
        if reading is not None:
            return mpi.Identifier(reading.system, reading.number)
    return mpi.parse(f"doc:{given.type}", given.number)


def _identifier(ctx: Ctx, given: IdentifierIn) -> mpi.Identifier:
    system = mpi.parse_system(given.system, ctx.actor)
    mpi.check_lookup(ctx.actor, system)
    return mpi.normalise(system, given.value)


def _candidate_out(ctx: Ctx, candidate: mpi.Candidate) -> CandidateOut:
    person = mpi.resolve(ctx, candidate.person_id)
    card = mpi.card_of_person(ctx, person)
    details = mpi.demographics(ctx, person, purpose=mpi.MATCH_PURPOSE)  # one event with the match's own
    return CandidateOut(
        person_id=person.id, ehc_id=card.ehc_id if card else None, card_status=card.status if card else None,
        grade=candidate.grade, score=candidate.score, probability=round(candidate.probability, 6),
        comparison=candidate.comparison,
        holder=MaskedHolderOut(name=identity.mask_name(details.name) if details.name else None, sex=person.sex,
                               birth_year=person.birth_year, region_code=person.region_code,
                               phone=identity.mask_phone(details.phone) if details.phone else None),
    )


@router.post("/match", response_model=MatchOut,
             summary="Match a patient against the master index; optionally link your number or queue a review")
def match(body: MatchIn, ctx: MatchSubmitter) -> MatchOut:
    outcome = mpi.submit(ctx, _record(ctx, body), link=body.link, limit=body.limit)
    linked_card = mpi.card_of_person(ctx, outcome.linked_person) if outcome.linked_person else None
    return MatchOut(
        candidates=[_candidate_out(ctx, c) for c in outcome.candidates],
        action=outcome.action,
        linked_person_id=outcome.linked_person.id if outcome.linked_person else None,
        linked_ehc_id=linked_card.ehc_id if linked_card else None,
        review_ids=outcome.review_ids,
    )
