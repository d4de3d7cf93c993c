"""The records API's wire models (the FHIR door answers FHIR JSON instead)."""

from __future__ import annotations

from datetime import datetime

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
    basis: str  # self | consent | own | break_glass
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
