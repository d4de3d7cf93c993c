"""Real-time matching of a submitted patient against the master index (issue 5).

A hospital submits a patient (with or without a document number), or a new person registers; the
people of the index sharing a blocking key with the record are scored with Fellegi-Sunter weights
over name (characters, pinyin, similar-sounding characters), birth date, sex, phone, address and
region, and graded certain / probable / possible. Certain links; probable and possible go to the
review queue (``review.enqueue``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ..kit.context import Ctx
from .service import Identifier

GRADES = ("certain", "probable", "possible")


@dataclass(frozen=True)
class Record:
    """A patient as a hospital or a legacy list gives it: in clear, in memory only."""

    name: str | None = None
    sex: str | None = None  # GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 unstated
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str | None = None
    document: Identifier | None = None  # e.g. doc:01 and the ID card number
    identifiers: tuple[Identifier, ...] = ()  # what the submitter would link: mrn:<inst>, ssc, ...


@dataclass(frozen=True)
class Candidate:
    """A person of the index scored against a record."""

    person_id: str
    score: float  # match weight: log2 of the likelihood ratio, summed over fields
    probability: float  # posterior match probability, 0..1
    grade: str  # certain | probable | possible
    comparison: dict = field(default_factory=dict)  # per field: level and weight (no personal data)


def match(ctx: Ctx, record: Record, *, limit: int = 10) -> list[Candidate]:
    """Candidates for ``record``, best first, graded; people below "possible" are left out."""
    raise NotImplementedError("real-time matcher: issue 5")
