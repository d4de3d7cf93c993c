from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
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


class MatchKey(Base):
    """A blocking key of a person for real-time matching: a blind index (HMAC-SM3) of a coarse
    combination of fields (e.g. surname pinyin + birth date, phone, given-name pinyin + birth year).

    Candidates for a submitted patient are the people sharing at least one key; the keys are keyed
    digests, so the table reveals no personal data. Rewritten whenever a person's details change.
    """

    __tablename__ = "mpi_match_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    key: Mapped[str] = mapped_column(String(64), index=True)


class MatchReview(Base):
    """A candidate pair the matcher could not decide (grade probable or possible), waiting for an
    operator: a submitted record (sealed, as the hospital or legacy list gave it) against a person
    of the index, or two people of the index that may be one.

    ``comparison`` holds the per-field agreement levels and weights (JSON, no personal data);
    reviewers see the two sides side by side, masked.
    """

    __tablename__ = "mpi_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(12))  # realtime | batch | registration
    link_job_id: Mapped[str | None] = mapped_column(String(24), index=True)
    institution_id: Mapped[str | None] = mapped_column(String(24), index=True)
    # The left side: either a person of the index, or a submitted record (sealed JSON) with the
    # identifier the submitter would link (e.g. its MRN), sealed too.
    left_person_id: Mapped[str | None] = mapped_column(ForeignKey("persons.id"), index=True)
    record_sealed: Mapped[str | None] = mapped_column(Text)
    right_person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    score: Mapped[float] = mapped_column(Float)  # match weight, log2 of the likelihood ratio
    probability: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(10))  # probable | possible
    comparison: Mapped[str] = mapped_column(Text)  # JSON
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)  # open | accepted | rejected
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class Merge(Base):
    """One merge of two people, kept so it can be undone: what moved is listed in ``MergeMove``."""

    __tablename__ = "mpi_merges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    target_person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    review_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    undone_by: Mapped[str | None] = mapped_column(String(64))
    undo_reason: Mapped[str | None] = mapped_column(Text)


class MergeMove(Base):
    """One thing a merge moved from the source person to the target (an identifier row, a card, a
    family binding, a record...), by kind and reference, so that unmerging moves exactly it back."""

    __tablename__ = "mpi_merge_moves"
    __table_args__ = (Index("ix_mpi_merge_moves_merge_kind", "merge_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merge_id: Mapped[int] = mapped_column(ForeignKey("mpi_merges.id"))
    kind: Mapped[str] = mapped_column(String(24))  # identifier | card | family_binding | ...
    ref: Mapped[str] = mapped_column(String(64))


class LinkJob(Base):
    """A batch linkage of a hospital's legacy patient list to the index (``ehc mpi link FILE``)."""

    __tablename__ = "mpi_link_jobs"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    institution_id: Mapped[str | None] = mapped_column(String(24), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(12))  # duckdb | spark
    status: Mapped[str] = mapped_column(String(12), default="running")  # running | done | failed
    records: Mapped[int] = mapped_column(Integer, default=0)
    linked: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
    output_dir: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class IdentifierUnbind(Base):
    """A cross-reference taken off a person because it was wrong (``xref.unbind``): which system,
    who, when and why. The value itself is not kept (it was wrong; its blind index is free again)."""

    __tablename__ = "mpi_identifier_unbinds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    system: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    institution_id: Mapped[str | None] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
