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
from ..sealed import details_for_matching, documents_for_matching, sealed_documents_for_matching
from ..values import Identifier
from . import evidence, names, places
from . import keys as match_keys

GRADES = ("certain", "probable", "possible")
MODEL_FILE = Path(__file__).with_name("fs_model.json")
PURPOSE = "mpi.match"
CANDIDATE_LIMIT = 50  # people scored per submitted record, most blocking keys shared first

LEVELS: dict[str, tuple[str, ...]] = {
    "name": names.LEVELS,
    "birth_date": ("exact", "swapped", "typo", "near", "year_only", "year", "different"),
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


compare_birth = evidence.compare_birth


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
        documents = {record.document.system: record.document.value} if own_document(record) else {}
        return cls(record.name, record.sex, record.birth_date, record.phone, record.address, record.region_code,
                   documents)


def own_document(record: Record) -> bool:
    """Whether the record's document can be its own (:func:`.evidence.own_document`): a resident ID
    whose birth date or sex contradicts the record's (a guardian's on a child's record) is set aside."""
    if record.document is None:
        return False
    if record.document.system != "doc:01":
        return True
    reading, _ = evidence.read_document("01", record.document.value)
    return evidence.own_document(reading, record.birth_date, record.sex)


def compare(a: Side, b: Side, *, parsed: tuple[names.Parsed, names.Parsed] | None = None,
            regions: tuple[str | None, str | None] | None = None) -> dict[str, str | None]:
    """Every field's comparison level (``None``: missing on either side). A caller comparing many
    pairs may pass what it read once per side: ``parsed``, the names as :func:`.names.parse` reads
    them; ``regions``, each side's region code or else the county its address names."""
    if regions is None:
        regions = (a.region_code or places.region_of(a.address), b.region_code or places.region_of(b.address))
    return {
        "name": names.compare(a.name, b.name, parsed=parsed),
        "birth_date": compare_birth(a.birth_date, b.birth_date),
        "sex": None if not (_known_sex(a.sex) and _known_sex(b.sex)) else ("same" if a.sex == b.sex else "different"),
        "phone": compare_digits(a.phone, b.phone),
        "address": compare_address(a.address, b.address),
        # Without a region code (legacy lists have none), the county the address names.
        "region": compare_region(*regions),
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

    def score(self, levels: dict[str, str | None], name_share: int = 1) -> tuple[float, dict[str, dict]]:
        """The sum of the levels' weights; a name shared by ``name_share`` people of the index born
        the same year weighs ``log2(name_share)`` less when it agrees (:func:`tf_adjustment`)."""
        total, detail = 0.0, {}
        for name, level in levels.items():
            if level is None:
                detail[name] = {"level": None, "weight": 0.0}
                continue
            weight = self.weight(name, level)
            if name == "name":
                weight -= tf_adjustment(level, name_share)
            total += weight
            detail[name] = {"level": level, "weight": round(weight, 2)}
        return total, detail

    def total(self, levels: dict[str, str | None], name_share: int = 1) -> float:
        """The score of :meth:`score` alone (the same sum in the same order), without the detail."""
        total = 0.0
        for name, level in levels.items():
            if level is None:
                continue
            weight = self.weight(name, level)
            if name == "name":
                weight -= tf_adjustment(level, name_share)
            total += weight
        return total

    def probability(self, score: float) -> float:
        log_odds = math.log2(self.prior / (1 - self.prior)) + score
        if log_odds > 60:
            return 1.0
        odds = 2.0 ** log_odds
        return odds / (1 + odds)

    def grade(self, score: float, levels: dict[str, str | None], *, checked_document: bool = True,
              close_birth: bool = False) -> str | None:
        """The grade of the score, under the shared decision rule's ceiling (:func:`.evidence.capped`:
        the same own document is decisive; certain needs name and birth date and corroboration; a
        conflicting document or sex never allows certain)."""
        found = next((grade for grade in GRADES if score >= self.thresholds[grade]), None)
        return evidence.capped(found, levels, checked_document=checked_document, close_birth=close_birth)

    def to_json(self) -> dict:
        return {"source": self.source, "prior": self.prior, "thresholds": self.thresholds, "m": self.m, "u": self.u}

    @classmethod
    def from_json(cls, data: dict) -> Model:
        return cls(m=data["m"], u=data["u"], prior=data["prior"], thresholds=data["thresholds"],
                   source=data.get("source", ""))


def tf_adjustment(name_level: str | None, name_share: int) -> float:
    """Term-frequency adjustment of an agreeing name: when ``name_share`` people of the index share
    the name (its pinyin) and the birth year, the name points at one of them, not at one person:
    its weight drops by ``log2(name_share)`` (王伟 born 1990 may be dozens of people; 欧阳子涵 one)."""
    if name_level not in ("exact", "homophone") or name_share <= 1:
        return 0.0
    return math.log2(name_share)


@lru_cache(maxsize=1)
def default_model() -> Model:
    return Model.from_json(json.loads(MODEL_FILE.read_text(encoding="utf-8")))


def score_pair(a: Side, b: Side, model: Model, name_share: int = 1) -> tuple[float, float, str | None, dict]:
    """(score, probability, grade or None, comparison) of one pair; ``name_share``: how many people of
    the index share a's name and birth year (term-frequency adjustment)."""
    levels = compare(a, b)
    total, detail = model.score(levels, name_share)
    checked = "doc:01" in a.documents.keys() & b.documents.keys()
    grade = model.grade(total, levels, checked_document=checked,
                        close_birth=evidence.birth_close(a.birth_date, b.birth_date))
    return total, model.probability(total), grade, detail


# -- matching against the index -----------------------------------------------------------------------

def _direct_ids(ctx: Ctx, record: Record, held_by: str | None = None) -> list[str]:
    """The holders of the record's document (``held_by`` when the caller knows it: a registration
    has just given it to its new person) and of its identifiers."""
    direct: list[str] = [held_by] if held_by is not None else []
    own = own_document(record)
    looked_up = (() if held_by is not None else (record.document,) if own else ()) + _near_documents(record, own)
    for identifier in looked_up + tuple(record.identifiers):
        holder = find_by_identifier(ctx, identifier)
        if holder is not None and holder.id not in direct:
            direct.append(holder.id)
    return direct


def _blocking_keys(ctx: Ctx, record: Record) -> list[str]:
    # Without a region code, the county read from the address (as batch linkage blocks on it).
    return match_keys.blind_keys(ctx.vault, record.name, _known_sex(record.sex), record.birth_date, record.phone,
                                 record.region_code or places.region_of(record.address), record.address)


def _near_documents(record: Record, own: bool) -> tuple[Identifier, ...]:
    """A resident ID failing its check: the valid numbers one keystroke away, whose holders are
    candidates too (the document then compares as one digit off)."""
    if not own or record.document is None or record.document.system != "doc:01":
        return ()
    reading, _ = evidence.read_document("01", record.document.value)
    if reading is None or reading.checked:
        return ()
    return tuple(Identifier("doc:01", number) for number in evidence.near_numbers(reading.number))


def name_share(ctx: Ctx, record: Record) -> int:
    """How many people of the index share the record's name (pinyin) and birth year: one count on
    the blocking key ``n`` (:func:`.keys.name_year_key`)."""
    key = match_keys.name_year_key(ctx.vault, record.name, record.birth_date)
    return repository.count_holding(ctx.session, key) if key else 1


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
          purpose: str = PURPOSE, exclude: str | None = None, held_by: str | None = None) -> list[Candidate]:
    """Candidates for ``record``, best first, graded; people below "possible" are left out.
    ``held_by``: the person who holds the record's document, when the caller knows it (a
    registration, which gave it to ``exclude`` a moment ago): it is not looked up again.

    Each returned candidate is an access to that person's data by the caller: one audit event per
    candidate, under ``purpose`` (``mpi.match``; FHIR ``$match`` passes its own). People compared but
    not returned are not recorded.
    """
    model = model or default_model()
    mine = Side.of_record(record)
    direct = _direct_ids(ctx, record, held_by)
    # The people sharing blocking keys come with their rows, their document of the record's kind and
    # the name's frequency, in one query (``repository.candidates_sharing``).
    system = next(iter(mine.documents)) if len(mine.documents) == 1 else None
    name_key = match_keys.name_year_key(ctx.vault, record.name, record.birth_date)
    rows, share = repository.candidates_sharing(ctx.session, _blocking_keys(ctx, record), limit=CANDIDATE_LIMIT,
                                                name_key=name_key, system=system, exclude=exclude)
    person_ids = [p for p in direct + [person.id for person, _ in rows if person.id not in direct] if p != exclude]
    if not person_ids:
        return []
    loaded = {person.id: person for person, _ in rows}
    if (len(mine.documents) <= 1 and all(pid in loaded and loaded[pid].status == "active" for pid in person_ids)):
        people = [loaded[pid] for pid in person_ids]
        documents = (sealed_documents_for_matching(ctx.vault, system, ((person.id, sealed) for person, sealed in rows))
                     if system else {})
    else:  # a holder found directly, a merged person (scored as the survivor), several kinds of document
        people = _survivors(ctx, person_ids)
        documents = documents_for_matching(ctx, [p.id for p in people], set(mine.documents))
    if share is None:
        share = name_share(ctx, record)
    found: list[Candidate] = []
    for person in people:
        side = side_of(ctx, person, documents.get(person.id, {}))
        score, probability, grade, detail = score_pair(mine, side, model, share)
        if grade is not None:
            found.append(Candidate(person.id, round(score, 3), probability, grade, detail))
    found.sort(key=lambda c: (GRADES.index(c.grade), -c.score, c.person_id))
    found = found[:limit]
    for candidate in found:
        audit.record_access(ctx, candidate.person_id, "read", purpose)
    return found
