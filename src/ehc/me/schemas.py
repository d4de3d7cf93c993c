"""The resident's own API on the wire. A resident sees their own details in full (it is them); a
family member they guard shows name and birth date in full, the phone masked; document numbers are
always masked (nobody needs theirs read back to them on a screen)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from ..cards.service import CardStatus
from ..identity.service import mask_number, mask_phone


class MyHolderOut(BaseModel):
    name: str | None
    sex: str
    birth_date: date | None
    region_code: str | None
    document_type: str | None
    document_number: str | None = Field(description="Masked")
    phone: str | None = Field(description="In full on your own card, masked on a family member's")
    address: str | None = Field(description="Only on your own card")


class MyCardOut(BaseModel):
    ehc_id: str
    status: str
    status_code: str
    sequence: int
    temporary: bool
    issued_at: datetime
    holder: MyHolderOut
    created: bool | None = None


class MyFamilyMemberOut(BaseModel):
    relation: str
    card: MyCardOut | None


class ReasonIn(BaseModel):
    reason: str | None = Field(None, max_length=500)


def my_card_out(card, person, details, identifiers, *, own: bool, created: bool | None = None) -> MyCardOut:  # noqa: ANN001
    document = next((i for i in identifiers if i.system.startswith("doc:")), None)
    return MyCardOut(
        ehc_id=card.ehc_id,
        status=card.status,
        status_code=CardStatus(card.status).national_code,
        sequence=card.sequence,
        temporary=card.temporary,
        issued_at=card.issued_at,
        holder=MyHolderOut(
            name=details.name,
            sex=person.sex,
            birth_date=details.birth_date,
            region_code=person.region_code,
            document_type=document.system[4:] if document else None,
            document_number=mask_number((document.system[4:], document.value)) if document else None,
            phone=(details.phone if own else mask_phone(details.phone)) if details.phone else None,
            address=details.address if own else None,
        ),
        created=created,
    )


class PasswordIn(BaseModel):
    new_password: str = Field(max_length=200)
    current_password: str | None = Field(None, max_length=200, description="Needed to change an existing password")
    code: str | None = Field(None, max_length=12, description="Or a fresh one-time code, e.g. to reset a forgotten one")
