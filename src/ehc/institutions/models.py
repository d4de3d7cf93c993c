from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    # Unified social credit code (GB 32100), the institution's legal identity.
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))  # hospital | community_centre | clinic | pharmacy
    region_code: Mapped[str] = mapped_column(String(6), index=True)  # GB/T 2260
    level: Mapped[str | None] = mapped_column(String(8))  # e.g. 3A, 2B, 1
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Department(Base):
    """A clinical or technical department of an institution, under a standard 4-digit code
    (《医疗机构诊疗科目名录》: two digits of category, two of speciality; ``0300`` internal medicine,
    ``0304`` cardiology). One department per code in an institution; the local name may differ from
    the standard label (``心血管内科`` for ``0304``)."""

    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("institution_id", "code", name="uq_departments_institution_code"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    code: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Terminal(Base):
    """A device through which the card is used at an institution: a service window, a self-service
    kiosk, a doctor workstation. ``terminal_id`` is the institution's own name for it, reported with
    every scan (card-use monitoring); unique within the institution, never reused (terminals are
    retired, not deleted, so old card-use reports still point at something)."""

    __tablename__ = "terminals"
    __table_args__ = (UniqueConstraint("institution_id", "terminal_id", name="uq_terminals_institution_terminal"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    terminal_id: Mapped[str] = mapped_column(String(32))
    type_code: Mapped[str] = mapped_column(String(2))  # 01 window | 02 kiosk | 99 other
    role: Mapped[str] = mapped_column(String(16))  # window | kiosk | workstation | other
    name: Mapped[str | None] = mapped_column(String(100))
    department_id: Mapped[str | None] = mapped_column(ForeignKey("departments.id"), index=True)
    status: Mapped[str] = mapped_column(String(8), default="active")  # active | retired
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
