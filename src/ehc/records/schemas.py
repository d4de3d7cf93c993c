"""The records API's wire models (the FHIR door answers FHIR JSON instead)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class EntryOut(BaseModel):
    resource_id: str
    version: int
    resource_type: str
    category: str
    sensitivity: str | None
    institution_id: str
    effective_at: datetime | None
    title: str
    status: str | None


class TimelineOut(BaseModel):
    basis: str  # self | guardian | consent | own | break_glass
    entries: list[EntryOut]


class ConsentIn(BaseModel):
    effect: str = "allow"
    institution_id: str = Field(max_length=24)
    categories: list[str] = Field(max_length=20)
    purpose: str = "treatment"
    days: int | None = None
    department: str | None = Field(default=None, max_length=8)


class ConsentOut(BaseModel):
    id: str
    effect: str
    institution_id: str
    department: str | None
    categories: list[str]
    purpose: str
    starts_at: datetime
    ends_at: datetime | None
    revoked_at: datetime | None
    active: bool


class BreakGlassOut(BaseModel):
    id: str
    at: datetime
    institution_id: str | None
    actor_kind: str
    actor_id: str | None
    reason: str


class SummaryItemOut(BaseModel):
    id: str  # the record's resource id (source "record") or the entry's id (source "self", removable)
    section: str
    text: str
    source: str  # record | self
    institution_id: str | None
    institution_name: str | None
    on: date | None
    sensitivity: str | None


class SummaryOut(BaseModel):
    """The first page of the basic health record (居民健康档案首页)."""

    blood_type: list[SummaryItemOut]
    allergies: list[SummaryItemOut]
    chronic_conditions: list[SummaryItemOut]
    operations: list[SummaryItemOut]
    family_history: list[SummaryItemOut]
    immunizations: list[SummaryItemOut]


class SummaryEntryIn(BaseModel):
    kind: str = Field(max_length=16)  # blood_type | allergy | condition | operation | family_history
    text: str = Field(default="", max_length=400)  # all but blood_type
    abo: str | None = Field(default=None, max_length=2)  # blood_type: A | B | AB | O
    rh: str | None = Field(default=None, max_length=8)  # blood_type: positive | negative | unknown
    on: date | None = None  # when it happened (optional)
