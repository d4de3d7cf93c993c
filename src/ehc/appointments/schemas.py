"""The appointments domain's wire format. Fees are whole fen; times are UTC on the wire (with the
China wall-clock time beside them for display)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from ..kit.clock import in_china
from .models import (
    POOLS,
    Booking,
    ClinicSession,
    Event,
    Period,
    Template,
    WaitlistEntry,
)

CATEGORY_LABELS = {"general": ("General", "普通"), "expert": ("Expert", "专家"), "special": ("Special needs", "特需")}
STATUS_FHIR = {  # FHIR Appointment.status of each booking status (docs/appointments.md)
    "held": "pending", "booked": "booked", "arrived": "arrived", "cancelled": "cancelled",
    "expired": "cancelled", "no_show": "noshow",
}


def _china(moment: datetime) -> str:
    return in_china(moment).strftime("%Y-%m-%d %H:%M")


class ShapeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(max_length=5, description="HH:MM China time", examples=["08:00"])
    end: str = Field(max_length=5, examples=["11:30"])
    period_minutes: int = Field(15, ge=5, le=240, description="分时段: minutes a period lasts")
    category: str = Field("general", max_length=8, description="general (普通), expert (专家) or special (特需)")
    fee_fen: int = Field(0, ge=0, le=10_000_000, description="registration fee in fen")
    quota_window: int = Field(0, ge=0, le=500, description="places a period for the window")
    quota_kiosk: int = Field(0, ge=0, le=500)
    quota_online: int = Field(0, ge=0, le=500)
    quota_referral: int = Field(0, ge=0, le=500, description="reserved for family doctors' referrals")
    referral_release_hours: int = Field(24, ge=0, le=720,
                                        description="hours before the session the referral quota opens to all")


class TemplateIn(ShapeIn):
    department_code: str = Field(max_length=4, examples=["0300"])
    doctor: str = Field("", max_length=64, description="empty for the department's own session")
    weekday: int = Field(ge=0, le=6, description="0 Monday ... 6 Sunday")


class SessionIn(ShapeIn):
    department_code: str = Field(max_length=4)
    doctor: str = Field("", max_length=64)
    day: date
    replace: bool = Field(False, description="withdraw the session published at the same start (no bookings)")


class ClosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: date
    reason: str = Field(max_length=200, examples=["国庆节"])
    department_code: str | None = Field(None, max_length=4, description="one department, or the whole institution")


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first: date
    last: date


class SuspendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=200, examples=["医生外出会诊"])


class BookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_id: int = Field(ge=1, le=2**62)
    member: str | None = Field(None, max_length=64, description="a family member's EHC ID you guard")


class DeskBookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_id: int = Field(ge=1, le=2**62)
    ehc_id: str = Field(max_length=64)
    confirm: bool = Field(True, description="book at once (the window, a kiosk); false: a hold to confirm")
    terminal_id: str | None = Field(None, max_length=32, description="the kiosk or window terminal")


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_id: int = Field(ge=1, le=2**62)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=200)


class CheckInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=2000, description="the resident's dynamic QR code, as scanned or typed")
    terminal_id: str | None = Field(None, max_length=32)


class TemplateOut(BaseModel):
    id: str
    department_code: str
    doctor: str
    weekday: int
    start: str
    end: str
    period_minutes: int
    category: str
    fee_fen: int
    quotas: dict[str, int]
    referral_release_hours: int
    active: bool

    @classmethod
    def of(cls, t: Template) -> TemplateOut:
        return cls(id=t.id, department_code=t.department_code, doctor=t.doctor, weekday=t.weekday, start=t.start,
                   end=t.end, period_minutes=t.period_minutes, category=t.category, fee_fen=t.fee_fen,
                   quotas={p: getattr(t, f"quota_{p}") for p in POOLS},
                   referral_release_hours=t.referral_release_hours, active=t.active)


class PeriodOut(BaseModel):
    id: int
    starts_at: datetime
    ends_at: datetime
    local: str
    capacity: int
    free: int = Field(description="places the caller's channel can still take")

    @classmethod
    def of(cls, p: Period, free: int) -> PeriodOut:
        return cls(id=p.id, starts_at=p.starts_at, ends_at=p.ends_at, local=_china(p.starts_at), capacity=p.capacity,
                   free=free)


class SessionOut(BaseModel):
    id: str
    institution_id: str
    institution_name: str | None = None
    department_code: str
    doctor: str
    day: date
    starts_at: datetime
    ends_at: datetime
    local: str
    category: str
    category_label: str
    category_label_zh: str
    fee_fen: int
    status: str
    suspended_reason: str | None = None
    free: int | None = None
    periods: list[PeriodOut] | None = None

    @classmethod
    def of(cls, s: ClinicSession, *, free: int | None = None, institution_name: str | None = None,
           periods: list[PeriodOut] | None = None) -> SessionOut:
        en, zh = CATEGORY_LABELS.get(s.category, (s.category, s.category))
        return cls(id=s.id, institution_id=s.institution_id, institution_name=institution_name,
                   department_code=s.department_code, doctor=s.doctor, day=s.day, starts_at=s.starts_at,
                   ends_at=s.ends_at, local=_china(s.starts_at), category=s.category, category_label=en,
                   category_label_zh=zh, fee_fen=s.fee_fen, status=s.status, suspended_reason=s.suspended_reason,
                   free=free, periods=periods)


class EventOut(BaseModel):
    at: datetime
    action: str
    from_status: str | None
    to_status: str | None
    actor_kind: str
    channel: str
    reason: str | None

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls(at=e.at, action=e.action, from_status=e.from_status, to_status=e.to_status,
                   actor_kind=e.actor_kind, channel=e.channel, reason=e.reason)


class ReferralOut(BaseModel):
    """The family doctor's referral a booking carries (booked into the hospital's referral quota)."""

    referral_id: str
    from_team_id: str | None
    from_institution_id: str | None
    reason: str | None

    @classmethod
    def of(cls, b: Booking) -> ReferralOut | None:
        if b.referral_id is None:
            return None
        return cls(referral_id=b.referral_id, from_team_id=b.referral_team_id,
                   from_institution_id=b.referral_from_institution_id, reason=b.referral_reason)


class BookingOut(BaseModel):
    reference: str
    status: str
    fhir_status: str
    ehc_id: str
    for_family_member: bool
    period_id: int
    session_id: str
    institution_id: str
    institution_name: str | None = None
    department_code: str
    doctor: str
    category: str
    fee_fen: int
    starts_at: datetime
    local: str
    pool: str
    channel: str
    hold_expires_at: datetime | None
    from_waitlist: bool
    referral: ReferralOut | None = Field(None, description="the family doctor's referral this booking carries")
    created_at: datetime
    history: list[EventOut] | None = None

    @classmethod
    def of(cls, b: Booking, p: Period, s: ClinicSession, *, institution_name: str | None = None,
           history: list[Event] | None = None) -> BookingOut:
        return cls(reference=b.reference, status=b.status, fhir_status=STATUS_FHIR[b.status], ehc_id=b.ehc_id,
                   for_family_member=b.booked_by is not None, period_id=p.id, session_id=s.id,
                   institution_id=s.institution_id, institution_name=institution_name,
                   department_code=s.department_code, doctor=s.doctor, category=s.category, fee_fen=s.fee_fen,
                   starts_at=p.starts_at, local=_china(p.starts_at), pool=b.pool, channel=b.channel,
                   hold_expires_at=b.hold_expires_at, from_waitlist=b.from_waitlist, referral=ReferralOut.of(b),
                   created_at=b.created_at,
                   history=[EventOut.of(e) for e in history] if history is not None else None)


class WaitlistOut(BaseModel):
    id: int
    period_id: int
    status: str
    position: int | None
    booking_reference: str | None = None
    created_at: datetime

    @classmethod
    def of(cls, w: WaitlistEntry, position: int | None, reference: str | None = None) -> WaitlistOut:
        return cls(id=w.id, period_id=w.period_id, status=w.status, position=position,
                   booking_reference=reference, created_at=w.created_at)


class OfferOut(BaseModel):
    period_id: int
    session_id: str
    starts_at: datetime
    local: str
    doctor: str
    department_code: str


class EffectOut(BaseModel):
    reference: str
    status: str
    starts_at: datetime
    local: str
    offers: list[OfferOut]


class CheckInOut(BaseModel):
    reference: str
    status: str
    scene: str = Field(description="care step recorded: 0101011 booked visit, 0101012 same-day")
    use_id: int
