"""The family-doctor API's wire format. Money in fen (integers); days are China calendar days."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyIn(_In):
    capacity_per_lead: int = Field(ge=1, le=100_000, description="Residents a lead doctor may hold (default 2000)")
    term_days: int = Field(365, ge=30, le=1100)
    reminder_days: int = Field(30, ge=0, le=1000)
    change_reasons: list[str] | None = Field(None, max_length=20,
                                             description="Reasons to change team mid-term (docs/family-doctors.md)")


class PolicyOut(BaseModel):
    region_code: str
    capacity_per_lead: int
    term_days: int
    reminder_days: int
    change_reasons: list[str]


class TeamIn(_In):
    institution_id: str = Field(max_length=24)
    name: str = Field(max_length=100, examples=["王医生团队"])
    lead_staff_id: str = Field(max_length=24, description="A family doctor or doctor of the centre")
    areas: list[str] = Field(default_factory=list, max_length=100,
                             description="GB/T 2260 region codes, or 9/12-digit township/street codes")


class MemberIn(_In):
    staff_id: str = Field(max_length=24)
    role: str = Field(max_length=16, description="nurse, public_health or specialist (a partner hospital's doctor)")


class AreasIn(_In):
    areas: list[str] = Field(max_length=100)


class ReasonIn(_In):
    reason: str = Field(max_length=200)


class MemberOut(BaseModel):
    staff_id: str
    name: str
    role: str
    institution_id: str


class TeamOut(BaseModel):
    id: str
    institution_id: str
    institution_name: str
    name: str
    status: str
    lead_staff_id: str
    members: list[MemberOut]
    areas: list[str]
    contracted: int = Field(description="Active contracts held by the lead doctor")
    capacity: int = Field(description="The region's capacity per lead doctor")


class ServiceIn(_In):
    code: str = Field(max_length=32, examples=["bp_follow_up"])
    kind: str = Field(max_length=12, description="follow_up, check_up or other")
    name: str | None = Field(None, max_length=100)
    yearly_count: int = Field(ge=1, le=52)


class EligibilityIn(_In):
    min_age: int | None = Field(None, ge=0, le=150)
    max_age: int | None = Field(None, ge=0, le=150)
    sex: str | None = Field(None, max_length=1, description="1 male, 2 female")
    conditions: list[str] | None = Field(None, max_length=10, description="Any one of these recorded")


class PackageIn(_In):
    code: str = Field(max_length=32, examples=["htn-2027"])
    kind: str = Field(max_length=24, description="basic, elderly, hypertension, diabetes, maternal_child, ...")
    name: str = Field(max_length=100)
    region_code: str | None = Field(None, max_length=6, description="A region's package (its operator)")
    institution_id: str | None = Field(None, max_length=24, description="A centre's own package (its admin)")
    services: list[ServiceIn] = Field(max_length=30)
    eligibility: EligibilityIn = Field(default_factory=EligibilityIn)
    price_public_fen: int = Field(0, ge=0, le=100_000_000)
    price_insurance_fen: int = Field(0, ge=0, le=100_000_000)
    price_resident_fen: int = Field(0, ge=0, le=100_000_000)


class PackageOut(BaseModel):
    id: str
    code: str
    kind: str
    name: str
    region_code: str
    institution_id: str | None
    status: str
    services: list[dict[str, Any]]
    eligibility: dict[str, Any]
    price_public_fen: int
    price_insurance_fen: int
    price_resident_fen: int
    replaces: str | None

    @classmethod
    def of(cls, p: Any) -> "PackageOut":
        return cls.model_validate(p, from_attributes=True)


class ConditionIn(_In):
    ehc_id: str = Field(max_length=64)
    code: str = Field(max_length=24, description="hypertension, diabetes_t2, pregnancy, severe_mental_illness, ...")


class ConditionOut(BaseModel):
    code: str
    recorded_at: datetime


class SignIn(_In):
    team_id: str = Field(max_length=24)
    package_ids: list[str] = Field(default_factory=list, max_length=10,
                                   description="Empty: the basic package the team offers")
    ehc_id: str | None = Field(None, max_length=64,
                               description="Resident: a guarded family member's card; window: the resident's card")
    code: str | None = Field(None, max_length=2000,
                             description="The resident's dynamic QR code, scanned by the doctor as consent")


class ContractLookupIn(_In):
    ehc_id: str = Field(max_length=64, description="The card of the resident at the window")


class ChangeTeamIn(_In):
    team_id: str = Field(max_length=24)
    reason: str = Field(max_length=32, description="One of the region's reasons (policy change_reasons)")


class ProgressOut(BaseModel):
    package_code: str
    code: str
    kind: str
    name: str
    promised: int
    done: int
    due_now: int
    overdue: int
    next_due: date | None


class EventOut(BaseModel):
    action: str
    actor_kind: str
    channel: str
    reason: str | None
    at: datetime


class ContractOut(BaseModel):
    id: str
    team_id: str
    institution_id: str
    status: str
    start_date: date
    end_date: date
    terms: list[dict[str, Any]]
    price_public_fen: int
    price_insurance_fen: int
    price_resident_fen: int
    channel: str
    signed_by_kind: str
    consent_card_use: int | None
    previous_id: str | None
    end_reason: str | None
    progress: list[ProgressOut] = Field(default_factory=list)
    resident_name: str | None = Field(None, description="Staff answers only (the read is audited)")
    relation: str | None = Field(None, description="Resident answers: self or the family relation")


class MeasurementsIn(_In):
    systolic_mmhg: int | None = Field(None, ge=40, le=300)
    diastolic_mmhg: int | None = Field(None, ge=20, le=200)
    glucose_mmol_x10: int | None = Field(None, ge=10, le=500, description="Fasting glucose, tenths of mmol/L")
    weight_kg_x10: int | None = Field(None, ge=5, le=3500, description="Tenths of kg")
    notes: str | None = Field(None, max_length=2000)


class ServiceRecordIn(MeasurementsIn):
    service_code: str = Field(max_length=32)
    code: str | None = Field(None, max_length=2000, description="The resident's QR code scanned at the visit")
    performed_at: datetime | None = None


class ServiceRecordOut(BaseModel):
    id: str
    contract_id: str
    service_code: str
    kind: str
    performed_at: datetime
    staff_id: str | None
    channel: str
    card_use_id: int | None
    systolic_mmhg: int | None
    diastolic_mmhg: int | None
    glucose_mmol_x10: int | None
    weight_kg_x10: int | None
    notes: str | None = None


class ReferralIn(_In):
    to_institution_id: str = Field(max_length=24)
    department_code: str = Field(max_length=4, examples=["0304"])
    reason: str = Field(max_length=200)


class ReferralOut(BaseModel):
    id: str
    contract_id: str
    team_id: str
    to_institution_id: str
    department_code: str
    reason: str
    status: str
    booking_ref: str | None
    created_at: datetime

    @classmethod
    def of(cls, r: Any) -> "ReferralOut":
        return cls.model_validate(r, from_attributes=True)


class WorkItemOut(BaseModel):
    contract_id: str
    resident_name: str | None
    end_date: date
    overdue: list[ProgressOut]


class WorkListOut(BaseModel):
    team_id: str
    overdue_total: int
    overdue: list[WorkItemOut]
    ending_soon: int


class OutreachOut(BaseModel):
    person_id: str = Field(description="Master-index id (to sign them when they come in or are visited)")
    masked_name: str | None
    birth_year: int | None
    sex: str
    region_code: str | None
    conditions: list[str]


class CoverageRowOut(BaseModel):
    key: str
    label: str
    residents: int
    contracted: int
    contracted_share: float | None
    elderly: int
    elderly_contracted: int
    children: int
    children_contracted: int
    hypertension: int
    hypertension_contracted: int
    diabetes: int
    diabetes_contracted: int
    pregnant: int
    pregnant_contracted: int
    services_promised: int
    services_delivered: int


class CoverageOut(BaseModel):
    rows: list[CoverageRowOut]
    total: CoverageRowOut


class DailyOut(BaseModel):
    reminded: int
    unreachable: int
    expired: int
