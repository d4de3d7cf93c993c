"""Real-time matching API: a hospital submits a patient and gets graded candidates (masked), and may
ask to link its own number to a certain match or queue the undecided ones for review.

Who: the hospital at work, as for binding its numbers (``mpi/auth.py``): its systems over the signed
API and its window, doctor, nurse and admin staff. Not family doctors or cashiers (they scan codes,
they do not manage identities), nor the commission's roles (they have no patients to submit).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..kit.auth import require_roles
from ..kit.roles import HOSPITAL_SYSTEM, Role
from ..cards import service as cards
from ..identity import mask_name, mask_phone, normalise_name, normalise_phone
from ..kit.context import Ctx
from ..kit.errors import Invalid, field_error
from . import matching, realtime, xref
from . import service as mpi
from .matching import Record

router = APIRouter(prefix="/api/v1/mpi", tags=["master index"])

MatchSubmitter = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, Role.INSTITUTION_ADMIN, HOSPITAL_SYSTEM)),
]


class DocumentIn(BaseModel):
    type: str = Field("01", description="CV02.01.101 document type: 01 resident ID card, 03 passport, ...")
    number: str = Field(max_length=64)


class IdentifierIn(BaseModel):
    system: str = Field(max_length=40, description="mrn (your own patient number; mrn:<your institution>), "
                                                   "oldcard, ssc, mi")
    value: str = Field(max_length=64)


class MatchIn(BaseModel):
    name: str | None = Field(None, max_length=64)
    sex: Literal["0", "1", "2", "9"] | None = None
    birth_date: date | None = None
    phone: str | None = Field(None, max_length=32)
    address: str | None = Field(None, max_length=200)
    region_code: str | None = Field(None, pattern=r"^[0-9]{6}$")
    document: DocumentIn | None = None
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=5)
    link: bool = Field(False, description="Link your number to a certain match; queue probable and possible "
                                          "ones for review")
    limit: int = Field(5, ge=1, le=20)


class FieldComparisonOut(BaseModel):
    level: str | None
    weight: float


class MaskedHolderOut(BaseModel):
    name: str | None
    sex: str
    birth_year: int | None
    region_code: str | None
    phone: str | None


class CandidateOut(BaseModel):
    person_id: str
    ehc_id: str | None = Field(description="the person's card, the usual reference elsewhere in the API")
    card_status: str | None
    grade: str = Field(description="certain | probable | possible")
    score: float = Field(description="match weight: log2 of the likelihood ratio, summed over fields")
    probability: float
    comparison: dict[str, FieldComparisonOut]
    holder: MaskedHolderOut


class MatchOut(BaseModel):
    candidates: list[CandidateOut]
    action: str | None = Field(description="with link: linked | already_linked | queued | no_match")
    linked_person_id: str | None = None
    linked_ehc_id: str | None = None
    review_ids: list[int] = Field(default_factory=list)


def _record(ctx: Ctx, body: MatchIn) -> Record:
    errors: list[dict] = []
    name = phone = None
    try:
        name = normalise_name(body.name) if body.name else None
    except Invalid as problem:
        errors.extend(problem.errors or [])
    try:
        phone = normalise_phone(body.phone) if body.phone else None
    except Invalid as problem:
        errors.extend(problem.errors or [])
    document = identifiers = None
    try:
        document = xref.parse(f"doc:{body.document.type}", body.document.number) if body.document else None
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
    return Record(name=name, sex=body.sex, birth_date=body.birth_date, phone=phone, address=body.address,
                  region_code=body.region_code, document=document, identifiers=identifiers or ())


def _identifier(ctx: Ctx, given: IdentifierIn) -> mpi.Identifier:
    system = xref.parse_system(given.system, ctx.actor)
    xref.check_lookup(ctx.actor, system)
    return xref.normalise(system, given.value)


def _candidate_out(ctx: Ctx, candidate: matching.Candidate) -> CandidateOut:
    person = mpi.resolve(ctx, candidate.person_id)
    card = cards.card_of_person(ctx, person)
    details = mpi.demographics(ctx, person, purpose=matching.PURPOSE)  # one event with the match's own
    return CandidateOut(
        person_id=person.id, ehc_id=card.ehc_id if card else None, card_status=card.status if card else None,
        grade=candidate.grade, score=candidate.score, probability=round(candidate.probability, 6),
        comparison=candidate.comparison,
        holder=MaskedHolderOut(name=mask_name(details.name) if details.name else None, sex=person.sex,
                               birth_year=person.birth_year, region_code=person.region_code,
                               phone=mask_phone(details.phone) if details.phone else None),
    )


@router.post("/match", response_model=MatchOut,
             summary="Match a patient against the master index; optionally link your number or queue a review")
def match(body: MatchIn, ctx: MatchSubmitter) -> MatchOut:
    outcome = realtime.submit(ctx, _record(ctx, body), link=body.link, limit=body.limit)
    linked_card = cards.card_of_person(ctx, outcome.linked_person) if outcome.linked_person else None
    return MatchOut(
        candidates=[_candidate_out(ctx, c) for c in outcome.candidates],
        action=outcome.action,
        linked_person_id=outcome.linked_person.id if outcome.linked_person else None,
        linked_ehc_id=linked_card.ehc_id if linked_card else None,
        review_ids=outcome.review_ids,
    )
