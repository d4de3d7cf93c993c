"""Real-time matching of a submitted patient against the master index (issue 5).

A hospital submits a patient (with or without a document number), or a new person registers; the
people of the index sharing a blocking key with the record (:mod:`ehc.mpi.matching.keys`), or holding its
document or one of its identifiers, are scored with Fellegi-Sunter weights over name (characters,
pinyin, similar-sounding characters: :mod:`ehc.mpi.matching.names`), birth date, sex, phone, address and
region, and graded certain / probable / possible. Certain links; probable and possible go to the
review queue (``review.enqueue``).

Fellegi-Sunter, in plain words: each field of a pair is put on a comparison *level* (exact, a
homophone, a typo, different...). For each level the model knows ``m``, how often a true match shows
it, and ``u``, how often two different people do. The level's weight is ``log2(m / u)``: positive when
the level is evidence of a match, negative against. A pair's *score* is the sum of its fields'
weights (a missing value adds nothing); its *probability* adds the prior odds that a blocked
candidate is the same person. ``m``, ``u`` and the prior are estimated by expectation-maximisation on
a generated Chinese test set (``python -m ehc.mpi.matching.estimate``; the result is ``fs_model.json`` beside
this file), without using the known truth.

Grades (thresholds on the score, in the model file; chosen on a held-out generated set, see
``docs/master-index.md``): ``certain`` links automatically, so its threshold is set for precision;
``probable`` and ``possible`` go to a person. A matching document number of the same kind is
decisive (``certain`` whatever else differs); a conflicting one weighs strongly against and never
lets a pair be ``certain``: a person looks before anything is linked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from ...audit import service as audit
from ...kit.context import Ctx
from .. import repository
from ..models import Person
from ..repository import find_by_identifier, resolve
from ..sealed import details_for_matching, documents_for_matching
from ..values import Identifier
from . import keys as match_keys
from . import names

GRADES = ("certain", "probable", "possible")
MODEL_FILE = Path(__file__).with_name("fs_model.json")
PURPOSE = "mpi.match"
CANDIDATE_LIMIT = 50  # people scored per submitted record, most blocking keys shared first

LEVELS: dict[str, tuple[str, ...]] = {
    "name": names.LEVELS,
    "birth_date": ("exact", "swapped", "typo", "year", "different"),
    "sex": ("same", "different"),
    "phone": ("exact", "typo", "different"),
    "address": ("exact", "similar", "partial", "different"),
    "region": ("exact", "city", "province", "different"),
    "document": ("exact", "typo", "different"),
}
FIELDS = tuple(LEVELS)


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


# -- comparing two sides ----------------------------------------------------------------------------

def _known_sex(sex: str | None) -> str | None:
    return sex if sex in ("1", "2") else None


def compare_birth(a: date | None, b: date | None) -> str | None:
    if a is None or b is None:
        return None
    if a == b:
        return "exact"
    if a.year == b.year and (a.month, a.day) == (b.day, b.month):
        return "swapped"
    if sum(x != y for x, y in zip(f"{a:%Y%m%d}", f"{b:%Y%m%d}")) == 1:
        return "typo"
    return "year" if a.year == b.year else "different"


def compare_digits(a: str | None, b: str | None) -> str | None:
    """Phones and document numbers: exact, one typo (a changed digit or two swapped), different."""
    if not a or not b:
        return None
    if a == b:
        return "exact"
    return "typo" if OSA.distance(a, b) <= 1 else "different"


def _address_text(address: str) -> str:
    return names.normalise(address)


def compare_address(a: str | None, b: str | None) -> str | None:
    if not a or not b:
        return None
    left, right = _address_text(a), _address_text(b)
    if left == right:
        return "exact"
    shorter, longer = sorted((left, right), key=len)
    if (len(shorter) >= 6 and shorter in longer) or fuzz.ratio(left, right) >= 85:
        return "similar"
    return "partial" if fuzz.partial_ratio(left, right) >= 75 else "different"


def compare_region(a: str | None, b: str | None) -> str | None:
    if not a or not b:
        return None
    if a == b:
        return "exact"
    if a[:4] == b[:4]:
        return "city"
    return "province" if a[:2] == b[:2] else "different"


def compare_documents(a: dict[str, str], b: dict[str, str]) -> str | None:
    """Documents of the same kind on both sides: the best level among them; none in common: missing."""
    levels = [compare_digits(a[system], b[system]) for system in a.keys() & b.keys()]
    for level in LEVELS["document"]:
        if level in levels:
            return level
    return None


@dataclass(frozen=True)
class Side:
    """One side of a pair, in clear (in memory only)."""

    name: str | None = None
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str | None = None
    documents: dict[str, str] = field(default_factory=dict)  # system -> value, e.g. doc:01

    @classmethod
    def of_record(cls, record: Record) -> Side:
        documents = {record.document.system: record.document.value} if record.document else {}
        return cls(record.name, record.sex, record.birth_date, record.phone, record.address, record.region_code,
                   documents)


def compare(a: Side, b: Side) -> dict[str, str | None]:
    """Every field's comparison level (``None``: missing on either side)."""
    return {
        "name": names.compare(a.name, b.name),
        "birth_date": compare_birth(a.birth_date, b.birth_date),
        "sex": None if not (_known_sex(a.sex) and _known_sex(b.sex)) else ("same" if a.sex == b.sex else "different"),
        "phone": compare_digits(a.phone, b.phone),
        "address": compare_address(a.address, b.address),
        "region": compare_region(a.region_code, b.region_code),
        "document": compare_documents(a.documents, b.documents),
    }


# -- the model --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """Fellegi-Sunter parameters: per field and level, m and u; the prior; the grade thresholds."""

    m: dict[str, dict[str, float]]
    u: dict[str, dict[str, float]]
    prior: float  # probability that a blocked candidate pair is a match
    thresholds: dict[str, float]  # grade -> lowest score
    source: str = ""

    def weight(self, field_name: str, level: str) -> float:
        return math.log2(self.m[field_name][level] / self.u[field_name][level])

    def score(self, levels: dict[str, str | None]) -> tuple[float, dict[str, dict]]:
        total, detail = 0.0, {}
        for name, level in levels.items():
            if level is None:
                detail[name] = {"level": None, "weight": 0.0}
                continue
            weight = self.weight(name, level)
            total += weight
            detail[name] = {"level": level, "weight": round(weight, 2)}
        return total, detail

    def probability(self, score: float) -> float:
        log_odds = math.log2(self.prior / (1 - self.prior)) + score
        if log_odds > 60:
            return 1.0
        odds = 2.0 ** log_odds
        return odds / (1 + odds)

    def grade(self, score: float, levels: dict[str, str | None]) -> str | None:
        if levels.get("document") == "exact":
            return "certain"  # the same document number of the same kind: decisive
        grades = GRADES if _identity_agrees(levels) else GRADES[2:]
        if levels.get("document") in ("different", "typo"):
            grades = tuple(g for g in grades if g != "certain")  # a person looks before linking
        for grade in grades:
            if score >= self.thresholds[grade]:
                return grade
        return None

    def to_json(self) -> dict:
        return {"source": self.source, "prior": self.prior, "thresholds": self.thresholds, "m": self.m, "u": self.u}

    @classmethod
    def from_json(cls, data: dict) -> Model:
        return cls(m=data["m"], u=data["u"], prior=data["prior"], thresholds=data["thresholds"],
                   source=data.get("source", ""))


def _identity_agrees(levels: dict[str, str | None]) -> bool:
    """Name and birth date (at least roughly) agree, or the document does. Without that a pair is at
    best "possible", however much else agrees: relatives share a surname, an address, a phone and a region, which the model
    counts as independent evidence although, in a household, they are not."""
    if levels.get("document") in ("exact", "typo"):
        return True  # the same document number, or one digit off: evidence about the person, not the household
    return levels.get("name") in ("exact", "homophone", "close", "fuzzy") and \
        levels.get("birth_date") in ("exact", "swapped", "typo")


@lru_cache(maxsize=1)
def default_model() -> Model:
    return Model.from_json(json.loads(MODEL_FILE.read_text(encoding="utf-8")))


def score_pair(a: Side, b: Side, model: Model) -> tuple[float, float, str | None, dict]:
    """(score, probability, grade or None, comparison) of one pair."""
    levels = compare(a, b)
    total, detail = model.score(levels)
    return total, model.probability(total), model.grade(total, levels), detail


# -- matching against the index -----------------------------------------------------------------------

def _candidate_ids(ctx: Ctx, record: Record) -> list[str]:
    """The people to score: the holders of the record's document and identifiers, then the people
    sharing the most blocking keys with it."""
    direct: list[str] = []
    for identifier in ((record.document,) if record.document else ()) + tuple(record.identifiers):
        holder = find_by_identifier(ctx, identifier)
        if holder is not None and holder.id not in direct:
            direct.append(holder.id)
    blocked = repository.people_sharing(
        ctx.session,
        match_keys.blind_keys(ctx.vault, record.name, _known_sex(record.sex), record.birth_date, record.phone,
                              record.region_code),
        limit=CANDIDATE_LIMIT,
    )
    return direct + [person_id for person_id in blocked if person_id not in direct]


def side_of(ctx: Ctx, person: Person, documents: dict[str, str]) -> Side:
    """A person's details in clear for comparison. Opening them is the matching step, not yet an
    access to report: only the candidates returned to the caller are recorded in the audit trail."""
    details = details_for_matching(ctx.vault, person)
    return Side(details.name, person.sex, details.birth_date, details.phone, details.address, person.region_code,
                documents)


def _survivors(ctx: Ctx, person_ids: list[str]) -> list[Person]:
    """The people behind these ids, following merges (a merged person's keys still lead to them)."""
    found: dict[str, Person] = {}
    for person in repository.people(ctx.session, person_ids):
        if person.status == "merged":
            person = resolve(ctx, person.id)
        found.setdefault(person.id, person)
    return [person for person in found.values() if person.status == "active"]


def match(ctx: Ctx, record: Record, *, limit: int = 10, model: Model | None = None,
          purpose: str = PURPOSE, exclude: str | None = None) -> list[Candidate]:
    """Candidates for ``record``, best first, graded; people below "possible" are left out.

    Each returned candidate is an access to that person's data by the caller: one audit event per
    candidate, under ``purpose`` (``mpi.match``; FHIR ``$match`` passes its own). People compared but
    not returned are not recorded.
    """
    model = model or default_model()
    person_ids = [p for p in _candidate_ids(ctx, record) if p != exclude]
    if not person_ids:
        return []
    people = _survivors(ctx, person_ids)
    mine = Side.of_record(record)
    documents = documents_for_matching(ctx, [p.id for p in people], set(mine.documents))
    found: list[Candidate] = []
    for person in people:
        score, probability, grade, detail = score_pair(mine, side_of(ctx, person, documents.get(person.id, {})), model)
        if grade is not None:
            found.append(Candidate(person.id, round(score, 3), probability, grade, detail))
    found.sort(key=lambda c: (GRADES.index(c.grade), -c.score, c.person_id))
    found = found[:limit]
    for candidate in found:
        audit.record_access(ctx, candidate.person_id, "read", purpose)
    return found
