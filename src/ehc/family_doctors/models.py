"""Family-doctor tables: regional policies, teams (members, service areas), service packages (their
services), recorded conditions, contracts (the package terms they were signed on, their events),
services delivered, referrals.

A person is always the master-index id (``person_id``); a staff member the staff account id. The
coarse fields a coverage table needs (region, birth year, sex) are copied onto a contract when it is
signed, in clear, as the GUIDE allows for statistics; nothing else personal is stored here but a
visit's notes, sealed.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow


class Policy(Base):
    """A region's family-doctor policy (GB/T 2260 code; the most specific region wins, the platform's
    defaults apply where no region set one): how many residents a lead doctor may hold, how long a
    contract runs, how early the renewal reminder goes out, and the reasons for which a resident may
    change team before the term ends."""

    __tablename__ = "fd_policies"
    __table_args__ = (
        CheckConstraint("capacity_per_lead > 0", name="capacity_positive"),
        CheckConstraint("term_days > 0 AND reminder_days >= 0", name="days_positive"),
    )

    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    capacity_per_lead: Mapped[int] = mapped_column(Integer)
    term_days: Mapped[int] = mapped_column(Integer)
    reminder_days: Mapped[int] = mapped_column(Integer)
    change_reasons: Mapped[list] = mapped_column(JSON)  # codes, e.g. ["moved", "team_dissolved"]
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Team(Base):
    """A family-doctor team (家庭医生团队) of a community health centre or township hospital."""

    __tablename__ = "fd_teams"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    lead_staff_id: Mapped[str] = mapped_column(String(24), index=True)
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | dissolved
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TeamMember(Base):
    """A member of a team: the lead GP, nurses, public-health workers, a partner hospital's specialist."""

    __tablename__ = "fd_team_members"
    __table_args__ = (UniqueConstraint("team_id", "staff_id", name="uq_fd_team_members_team_staff"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("fd_teams.id"), index=True)
    staff_id: Mapped[str] = mapped_column(String(24), index=True)
    role: Mapped[str] = mapped_column(String(16))  # lead_gp | nurse | public_health | specialist
    institution_id: Mapped[str] = mapped_column(String(24))  # the member's own (a partner hospital's)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TeamArea(Base):
    """A region (GB/T 2260, or a 9-digit township/street code) a team serves."""

    __tablename__ = "fd_team_areas"
    __table_args__ = (UniqueConstraint("team_id", "region_code", name="uq_fd_team_areas_team_region"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("fd_teams.id"), index=True)
    region_code: Mapped[str] = mapped_column(String(12), index=True)


class Package(Base):
    """A service package (服务包), defined by a region (``institution_id`` None) or by a centre.

    Who is eligible and what it costs are data: ``eligibility`` holds ``min_age``, ``max_age``,
    ``sex`` and ``conditions`` (any of them). A package is never edited once signed on: a new version
    replaces it (``replaces``), and contracts keep the terms they were signed on."""

    __tablename__ = "fd_packages"
    __table_args__ = (
        CheckConstraint("price_public_fen >= 0 AND price_insurance_fen >= 0 AND price_resident_fen >= 0",
                        name="prices_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(24))  # basic | elderly | hypertension | diabetes | ...
    name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    institution_id: Mapped[str | None] = mapped_column(String(24), index=True)
    price_public_fen: Mapped[int] = mapped_column(Integer, default=0)
    price_insurance_fen: Mapped[int] = mapped_column(Integer, default=0)
    price_resident_fen: Mapped[int] = mapped_column(Integer, default=0)
    eligibility: Mapped[dict] = mapped_column(JSON)
    services: Mapped[list] = mapped_column(JSON)  # [{"code", "kind", "name", "yearly_count"}]
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | retired
    replaces: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Condition(Base):
    """A condition recorded for a person by a clinician (hypertension, type 2 diabetes, pregnancy ...),
    which package eligibility and the key-population coverage read. ``region_code`` is the person's,
    copied in clear for statistics."""

    __tablename__ = "fd_conditions"
    __table_args__ = (UniqueConstraint("person_id", "code", name="uq_fd_conditions_person_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    code: Mapped[str] = mapped_column(String(24))
    region_code: Mapped[str | None] = mapped_column(String(6), index=True)
    recorded_by: Mapped[str | None] = mapped_column(String(64))
    institution_id: Mapped[str | None] = mapped_column(String(24))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Contract(Base):
    """A signed family-doctor contract (签约): one person, one team, a term.

    One active contract per person: ``active_person_id`` is the person's id while the contract is
    active and NULL otherwise, under a unique constraint, so two racing signatures cannot both win
    on either database. The package terms (services, yearly counts, prices) are copied at signing
    (``terms``), so a later change of policy or package does not rewrite a signed contract."""

    __tablename__ = "fd_contracts"
    __table_args__ = (
        Index("ix_fd_contracts_team_status", "team_id", "status"),
        Index("ix_fd_contracts_status_end", "status", "end_date"),
        CheckConstraint("status IN ('active', 'ended', 'terminated', 'renewed', 'changed')", name="status"),
        CheckConstraint("price_public_fen >= 0 AND price_insurance_fen >= 0 AND price_resident_fen >= 0",
                        name="prices_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    active_person_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("fd_teams.id"))
    institution_id: Mapped[str] = mapped_column(String(24), index=True)
    lead_staff_id: Mapped[str] = mapped_column(String(24), index=True)
    status: Mapped[str] = mapped_column(String(12), default="active")
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    package_ids: Mapped[list] = mapped_column(JSON)
    terms: Mapped[list] = mapped_column(JSON)  # the packages as signed, services and prices included
    services_due: Mapped[int] = mapped_column(Integer, default=0)  # sum of the yearly counts
    price_public_fen: Mapped[int] = mapped_column(Integer, default=0)
    price_insurance_fen: Mapped[int] = mapped_column(Integer, default=0)
    price_resident_fen: Mapped[int] = mapped_column(Integer, default=0)
    # Coarse, in clear, for coverage statistics.
    region_code: Mapped[str | None] = mapped_column(String(6), index=True)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    sex: Mapped[str] = mapped_column(String(1), default="0")
    channel: Mapped[str] = mapped_column(String(4))
    signed_by_kind: Mapped[str] = mapped_column(String(12))
    signed_by: Mapped[str | None] = mapped_column(String(64))  # staff id, or the guardian's person id
    consent_use_id: Mapped[int | None] = mapped_column(Integer)  # the card use of a scanned QR consent
    previous_id: Mapped[str | None] = mapped_column(String(24), index=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ContractEvent(Base):
    """Each step of a contract's life, with who, on which channel and why."""

    __tablename__ = "fd_contract_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("fd_contracts.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # sign | renew | terminate | change_team | remind | expire | service | merge | unmerge
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    institution_id: Mapped[str | None] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(4))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Delivery(Base):
    """A service delivered under a contract: a follow-up or a check-up, by a team member, with its
    measurements (integers: mmHg, tenths of mmol/L, tenths of kg) and sealed notes."""

    __tablename__ = "fd_deliveries"
    __table_args__ = (Index("ix_fd_deliveries_contract_service", "contract_id", "service_code"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("fd_contracts.id"))
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    team_id: Mapped[str] = mapped_column(String(24), index=True)
    service_code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(12))  # follow_up | check_up | other
    performed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    staff_id: Mapped[str | None] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(4))
    card_use_id: Mapped[int | None] = mapped_column(Integer)
    systolic_mmhg: Mapped[int | None] = mapped_column(Integer)
    diastolic_mmhg: Mapped[int | None] = mapped_column(Integer)
    glucose_mmol_x10: Mapped[int | None] = mapped_column(Integer)
    weight_kg_x10: Mapped[int | None] = mapped_column(Integer)
    notes_sealed: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Referral(Base):
    """A referral (转诊) by a team member of a contracted resident to a specialist department. The
    booking into the hospital's referral quota is the appointments domain's (``booking_ref``)."""

    __tablename__ = "fd_referrals"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("fd_contracts.id"), index=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    team_id: Mapped[str] = mapped_column(String(24), index=True)
    staff_id: Mapped[str | None] = mapped_column(String(24))
    to_institution_id: Mapped[str] = mapped_column(String(24))
    department_code: Mapped[str] = mapped_column(String(4))
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="requested")  # requested | booked | cancelled
    booking_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    booked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
