"""Master index API shapes: cross-references, the review queue, merges. Personal fields are masked."""

from __future__ import annotations

from datetime import date, datetime


from pydantic import BaseModel, Field


class BindIn(BaseModel):
    system: str = Field(max_length=40, description="mrn:<institution>, oldcard:<institution> (or bare mrn / oldcard "
                                                   "for your own), ssc, mi")
    value: str = Field(max_length=64)
    code: str | None = Field(default=None, max_length=1024, description="the resident's scanned EHC1:/EHCM1: code")
    scene: str = Field(default="010101", max_length=7, description="care step the scan is recorded under")
    channel: str | None = Field(default=None, max_length=4, description="card-use channel; default: yours")
    terminal_id: str | None = Field(default=None, max_length=32)
    department: str | None = Field(default=None, max_length=8)
    ehc_id: str | None = Field(default=None, max_length=64, description="or: the card found by a lookup")


class UnbindIn(BaseModel):
    system: str = Field(max_length=40)
    value: str = Field(max_length=64)
    ehc_id: str = Field(max_length=64, description="the card (or master-index id) the link is on")
    reason: str = Field(max_length=500)


class IdentifierOut(BaseModel):
    system: str
    value: str = Field(description="in clear for your own institution's numbers, masked otherwise")


class HolderOut(BaseModel):
    name: str | None
    sex: str
    birth_year: int | None
    region_code: str | None
    phone: str | None


class PersonOut(BaseModel):
    person_id: str = Field(description="master-index id (random; for people without a card)")
    ehc_id: str | None
    card_status: str | None
    holder: HolderOut


class BoundOut(PersonOut):
    system: str
    created: bool
    use_id: int | None = Field(description="the card use the scan recorded, if bound by a scanned code")


class SideOut(BaseModel):
    kind: str = Field(description="record (as submitted) or person (of the index)")
    person_id: str | None
    ehc_id: str | None
    card_status: str | None
    fields: dict[str, str | None]
    identifiers: list[IdentifierOut]


class ReviewOut(BaseModel):
    id: int
    source: str
    status: str
    grade: str
    score: float
    probability: float
    institution_id: str | None
    link_job_id: str | None
    pair: str = Field(description="record (a submitted record against a person) or persons (two people)")
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


class ReviewPage(BaseModel):
    items: list[ReviewOut]
    total: int


class ReviewDetailOut(ReviewOut):
    left: SideOut
    right: SideOut
    comparison: dict


class AcceptIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)
    keep: str | None = Field(default=None, description="two people: left or right survives (default: the one "
                                                       "holding a card, else right)")


class RejectIn(BaseModel):
    reason: str = Field(max_length=500)


class DecisionOut(BaseModel):
    review: ReviewOut
    linked: list[str]
    merge_id: int | None


class MergeIn(BaseModel):
    source: str = Field(max_length=64, description="card EHC ID (or master-index id) of the person merged away")
    target: str = Field(max_length=64, description="card EHC ID (or master-index id) of the person who remains")
    reason: str = Field(max_length=500)


class UndoIn(BaseModel):
    reason: str = Field(max_length=500)


class MoveOut(BaseModel):
    kind: str
    ref: str


class MergeOut(BaseModel):
    id: int
    source_person_id: str
    target_person_id: str
    reason: str
    actor_kind: str
    actor_id: str | None
    review_id: int | None
    at: datetime
    undone_at: datetime | None
    undone_by: str | None
    undo_reason: str | None
    moves: list[MoveOut]


# -- real-time matching ---------------------------------------------------------------------------

class DocumentIn(BaseModel):
    type: str = Field("01", description="CV02.01.101 document type: 01 resident ID card, 03 passport, ...")
    number: str = Field(max_length=64)


class IdentifierIn(BaseModel):
    system: str = Field(max_length=40, description="mrn (your own patient number; mrn:<your institution>), "
                                                   "oldcard, ssc, mi")
    value: str = Field(max_length=64)


class MatchIn(BaseModel):
    name: str | None = Field(None, max_length=64)
    sex: str | None = Field(None, max_length=16, description="GB/T 2261.1 code (0, 1, 2, 9), or 男/女, M/F, "
                                                           "male/female; anything else counts as unknown")
    birth_date: date | None = None
    phone: str | None = Field(None, max_length=32, description="mobile, or landline with its area code")
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
