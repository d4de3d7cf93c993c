"""The card API's wire format."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from ..identity.service import mask_name, mask_number, mask_phone
from .models import CardStatus


class DocumentIn(BaseModel):
    type: str = Field(description="CV02.01.101 code: 01 resident ID card, 03 passport, 06 HK/Macao permit, ...",
                      examples=["01"], max_length=2)
    number: str = Field(max_length=64, examples=["11010519491231002X"])


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64, examples=["张三"])
    document: DocumentIn
    sex: str | None = Field(None, description="GB/T 2261.1: 1 male, 2 female", max_length=1)
    birth_date: date | None = None
    phone: str | None = Field(None, max_length=20)
    address: str | None = Field(None, max_length=200)
    region_code: str | None = Field(None, description="GB/T 2260 region code", max_length=6)


class FamilyMemberIn(RegistrationIn):
    relation: str = Field(description="child, parent, spouse, grandchild, grandparent, sibling, other")


class NewbornIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sex: str = Field(max_length=1)
    birth_date: date
    name: str | None = Field(None, max_length=64)
    birth_certificate: str | None = Field(None, max_length=16)
    birth_order: int = Field(1, ge=1, le=9)
    multiple_birth: bool = False


class TemporaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sex: str = Field("0", max_length=1)
    approximate_birth_year: int | None = Field(None, ge=1900, le=2100)
    note: str = Field(max_length=500, description="Where found, apparent age, distinguishing marks")


class MergeIn(BaseModel):
    into: str = Field(min_length=64, max_length=64, description="EHC ID of the identified person's card")
    reason: str | None = Field(None, max_length=500)


class ActionIn(BaseModel):
    reason: str | None = Field(None, max_length=500)


class ReviewIn(BaseModel):
    """Approving an application pending review: the document the holder shows, as the person checking it
    reads it (it must be the one the application was made with)."""

    document: DocumentIn | None = Field(None, description="required to approve; optional to reject")
    reason: str | None = Field(None, max_length=500, description="required to reject")


class ChangesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=64)
    sex: str | None = Field(None, max_length=1)
    birth_date: date | None = None
    phone: str | None = Field(None, max_length=20)
    address: str | None = Field(None, max_length=200)
    region_code: str | None = Field(None, max_length=6)
    reason: str | None = Field(None, max_length=500)


class LookupIn(BaseModel):
    document: DocumentIn


class HolderOut(BaseModel):
    """The holder as staff see them: masked, enough to confirm who is at the window."""

    name: str | None
    sex: str
    birth_year: int | None
    region_code: str | None
    document_type: str | None
    document_number: str | None
    phone: str | None


class CardOut(BaseModel):
    ehc_id: str
    status: str
    status_code: str = Field(description="National card status code (0 cancelled, 1 normal, 2 pending review, 3 rejected; 6 lost)")
    sequence: int
    temporary: bool
    channel: str
    institution_id: str | None
    verifier: str | None
    issued_at: datetime
    holder: HolderOut
    created: bool | None = Field(None, description="On registration: false when the existing card was returned")


class CardEventOut(BaseModel):
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    actor_kind: str
    actor_id: str | None
    institution_id: str | None
    operator: str | None
    channel: str
    at: datetime


class FamilyMemberOut(BaseModel):
    relation: str
    card: CardOut | None


def card_out(card, person, details, identifiers, *, created: bool | None = None) -> CardOut:  # noqa: ANN001
    """Shape a card and its holder for the wire. Personal fields are masked: this answer goes to
    window staff and to the public apply page, and neither needs more to confirm the holder."""
    document = next((i for i in identifiers if i.system.startswith("doc:")), None)
    return CardOut(
        ehc_id=card.ehc_id,
        status=card.status,
        status_code=_national(card.status),
        sequence=card.sequence,
        temporary=card.temporary,
        channel=card.channel,
        institution_id=card.institution_id,
        verifier=card.verifier,
        issued_at=card.issued_at,
        holder=HolderOut(
            name=mask_name(details.name) if details.name else None,
            sex=person.sex,
            birth_year=person.birth_year,
            region_code=person.region_code,
            document_type=document.system[4:] if document else None,
            document_number=mask_number((document.system[4:], document.value)) if document else None,
            phone=mask_phone(details.phone) if details.phone else None,
        ),
        created=created,
    )


def _national(status: str) -> str:
    return CardStatus(status).national_code
