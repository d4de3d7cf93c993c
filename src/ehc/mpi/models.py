from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow


class Person(Base):
    """One resident. Personal fields are sealed; only coarse statistics fields are in clear."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | merged
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("persons.id"), index=True)
    # A temporary person stands for an unidentified emergency patient until merged into the real one.
    temporary: Mapped[bool] = mapped_column(Boolean, default=False)

    name_sealed: Mapped[str | None] = mapped_column(Text)
    birth_date_sealed: Mapped[str | None] = mapped_column(Text)
    phone_sealed: Mapped[str | None] = mapped_column(Text)
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    address_sealed: Mapped[str | None] = mapped_column(Text)
    note_sealed: Mapped[str | None] = mapped_column(Text)

    # Coarse, in clear, for statistics (GUIDE: birth year, sex, region).
    sex: Mapped[str] = mapped_column(String(1), default="0")  # GB/T 2261.1
    birth_year: Mapped[int | None] = mapped_column(Integer)
    region_code: Mapped[str | None] = mapped_column(String(6), index=True)  # GB/T 2260

    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class PersonIdentifier(Base):
    """Something that identifies a person: a document, a newborn's registration key, and (later) a
    hospital's patient number or a social security card.

    ``system`` names the identifier space: ``doc:01`` (resident ID card), ``doc:03`` (passport), ...,
    ``newborn`` (parent + birth date + birth order). The blind index is unique: one identifier can
    never lead to two people, which is what makes "never two cards for one person" hold under
    concurrent registrations.
    """

    __tablename__ = "person_identifiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    system: Mapped[str] = mapped_column(String(40))
    value_sealed: Mapped[str] = mapped_column(Text)
    blind_index: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
