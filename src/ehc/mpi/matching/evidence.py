"""One set of normalisers and one decision rule for both doors of the master index: the real-time
matcher (``POST /mpi/match``, :mod:`.matcher`) and batch linkage (:mod:`ehc.mpi.linkage`). A record
read here gets the same fields, and a pair the same ceiling on its grade, whichever door it came
through (docs/master-index.md, "The evidence model").

Normalisers (nothing here refuses a record; what cannot be read is left out and weighs nothing):

* :func:`sex_code`: ``1``/``男``/``M``/``male`` -> ``1``, ``2``/``女``/``F``/``female`` -> ``2``, else ``0``;
* :func:`phone_digits`: mobile numbers as 11 digits, landlines (``0571-8xxxxxxx``) as their digits;
* :func:`read_document`: a resident ID number of 15 digits becomes its 18-digit form (GB 11643), one
  failing its check character is kept as *unchecked* (weighed as one digit off, never decisive);
  the birth date and sex it encodes are read, so :func:`own_document` can tell a guardian's
  document on a child's record (the document is then set aside: it is not this person's).

The decision rule (:func:`ceiling`): the score (Fellegi-Sunter weights) grades a pair, but some
evidence caps the grade whatever the score:

* the same own document number of the same kind is decisive (``certain``);
* name and birth date must roughly agree (or the document does, or the same full name at the same
  phone and address: a mistyped birth date; or at the same phone or address with a birth date two
  errors off at most), else at best ``possible``: relatives share a surname,
  an address, a phone and a region, but not a full name;
* ``certain`` needs corroboration beyond name + birth date: the document (exact or one digit off),
  the phone, the address or the county (the same region code, or the county the address names
  when a list has no codes); two people with a common name born on the same day (doppelgängers)
  are at best ``probable``, so a person looks;
* a conflicting resident ID (its check character holds) or sex never allows ``certain``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from ...identity import service as identity
from ...kit.errors import Invalid

GRADES = ("certain", "probable", "possible")
IDENTITY_NAME = ("exact", "homophone", "close", "fuzzy")
IDENTITY_BIRTH = ("exact", "swapped", "typo", "near", "year_only")
CORROBORATING = {"document": ("exact", "typo"), "phone": ("exact", "typo"), "address": ("exact", "similar"),
                 "region": ("exact",)}

_SEX = {"1": "1", "男": "1", "m": "1", "male": "1", "男性": "1",
        "2": "2", "女": "2", "f": "2", "female": "2", "女性": "2",
        "0": "0", "未知": "0", "u": "0", "9": "9", "未说明": "9"}


def sex_code(raw: str | None) -> str:
    """GB/T 2261.1 code of what a system wrote for sex; anything unreadable is ``0`` (unknown)."""
    if not raw:
        return "0"
    return _SEX.get(unicodedata.normalize("NFKC", str(raw)).strip().lower(), "0")


def phone_digits(raw: str | None) -> str | None:
    """A phone as digits: mobile numbers as their 11 digits (``+86``/``0086`` dropped), landlines with
    their area code as written (7-12 digits, separators dropped); ``None`` when it is no number."""
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    digits = re.sub(r"[\s\-()+]", "", text)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not digits.isdigit() or not 7 <= len(digits) <= 12:
        return None
    return digits


@dataclass(frozen=True)
class DocumentReading:
    """A document as read for matching: ``system`` (``doc:01``) and ``number`` (normalised; 18
    characters for a resident ID), whether its check character holds, whether it was converted from
    15 digits, and the birth date and sex a resident ID encodes."""

    system: str
    number: str
    checked: bool = True
    converted: bool = False
    birth_date: date | None = None
    sex: str | None = None


def read_document(id_type: str | None, raw: str | None) -> tuple[DocumentReading | None, str | None]:
    """``(reading, note)``: the reading, or ``None`` with a note (``id_number_unreadable``) when the
    number is no document of its kind. Resident IDs are read leniently (15 digits converted, a failed
    check kept as unchecked); other kinds as registration checks them."""
    number = (raw or "").strip()
    if not number:
        return None, None
    code = (id_type or "").strip() or "01"
    code = code.zfill(2) if code.isdigit() else code
    if code == "01":
        found = identity.read_resident_id(number)
        if found is None:
            return None, "id_number_unreadable"
        return DocumentReading("doc:01", found.number, found.checked, found.converted, found.birth_date,
                               found.sex), None
    try:
        document = identity.parse_document(code, number)
    except Invalid as problem:
        return None, "id_type_unknown" if "type" in problem.code else "id_number_unreadable"
    return DocumentReading(f"doc:{document.type.value}", document.number), None


def own_document(reading: DocumentReading | None, birth_date: date | None, sex: str | None) -> bool:
    """Whether the document can be this person's own: a resident ID encodes a birth date and a sex;
    when the record's contradict them (another year and no typo or swap, or the other sex) the
    number is someone else's, typically a parent's on a child's record, and must not link."""
    if reading is None:
        return False
    if reading.sex and sex in ("1", "2") and reading.sex != sex:
        return False
    if reading.birth_date and birth_date:
        return compare_birth(reading.birth_date, birth_date) != "different"
    return True


def year_only(born: date) -> bool:
    """A date that legacy systems write when only the year is known (``YYYY-01-01``)."""
    return born.month == 1 and born.day == 1


def compare_birth(a: date | None, b: date | None) -> str | None:
    """exact; day and month swapped; one digit typed wrong; one day off (30 -> 29 and 10 -> 09 are
    one day, not a different date); the same year where one side knows only the year
    (``YYYY-01-01``); the same year otherwise; different."""
    if a is None or b is None:
        return None
    if a == b:
        return "exact"
    if a.year == b.year and (a.month, a.day) == (b.day, b.month):
        return "swapped"
    if sum(x != y for x, y in zip(f"{a:%Y%m%d}", f"{b:%Y%m%d}")) == 1:
        return "typo"
    if abs((a - b).days) == 1:
        return "near"
    if a.year == b.year:
        return "year_only" if year_only(a) or year_only(b) else "year"
    return "different"


def birth_close(a: date | None, b: date | None) -> bool:
    """Two errors at most between two birth dates: at most two digits differ (``1967-05-09`` for
    ``1957-05-19``); one day off and one digit wrong; day and month swapped and one digit wrong; or
    a year-only date (``YYYY-01-01``) whose year is one digit off. Legacy lists carry such dates
    where two errors met."""
    if a is None or b is None:
        return False
    left, right = f"{a:%Y%m%d}", f"{b:%Y%m%d}"
    if _differ(left, right) <= 2:
        return True
    if (year_only(a) or year_only(b)) and _differ(left[:4], right[:4]) <= 1:
        return True
    near = [f"{b + timedelta(days=step):%Y%m%d}" for step in (-1, 1) if date.min < b < date.max]
    if any(_differ(left, other) <= 1 for other in near):
        return True
    for x, y in ((a, right), (b, left)):  # either side's day and month swapped, then one digit wrong
        if x.day <= 12 and _differ(f"{x.year:04d}{x.day:02d}{x.month:02d}", y) <= 1:
            return True
    return False


def _differ(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))


def identity_agrees(levels: dict[str, str | None], *, close_birth: bool = False) -> bool:
    """Name and birth date (at least roughly) agree, or the document does. Without that a pair is at
    best "possible", however much else agrees: relatives share a surname, an address, a phone and a
    region, which the model counts as independent evidence although, in a household, they are not.
    ``close_birth``: the birth dates are two errors apart at most (:func:`birth_close`)."""
    if levels.get("document") in ("exact", "typo"):
        return True
    if levels.get("name") in IDENTITY_NAME and levels.get("birth_date") in IDENTITY_BIRTH:
        return True
    # The same full name at the same phone and address with a mistyped birth date: one person (two
    # members of a household do not share a full name). With a birth date two errors off at most,
    # the same phone or the same address is enough: a look-alike has neither, a relative has
    # another name.
    if levels.get("name") not in ("exact", "homophone"):
        return False
    phone = levels.get("phone") in ("exact", "typo")
    address = levels.get("address") in ("exact", "similar")
    return (phone and address) or (close_birth and (phone or address))


def corroborated(levels: dict[str, str | None]) -> bool:
    """Evidence beyond name and birth date: the document, the phone, the address or the county agrees."""
    return any(levels.get(field) in agreeing for field, agreeing in CORROBORATING.items())


def ceiling(levels: dict[str, str | None], *, checked_document: bool = True,
            close_birth: bool = False) -> str | None:
    """The best grade these levels allow whatever the score (``None``: no cap). ``"decisive"`` means
    the same own document: certain whatever the score. ``checked_document``: the document carries a
    check character that held (a resident ID), so a different number is another person's document;
    a number without one (passport, other) may be mistyped in more than one place, and a difference
    only weighs (its weight in the score)."""
    if levels.get("document") == "exact":
        return "decisive"
    if not identity_agrees(levels, close_birth=close_birth):
        return "possible"
    conflict = levels.get("document") == "different" and checked_document
    if conflict or levels.get("sex") == "different" or not corroborated(levels):
        return "probable"
    return None


def capped(grade: str | None, levels: dict[str, str | None], *, checked_document: bool = True,
           close_birth: bool = False) -> str | None:
    """``grade`` (from the score) under the :func:`ceiling` of these levels."""
    cap = ceiling(levels, checked_document=checked_document, close_birth=close_birth)
    if cap == "decisive":
        return "certain"
    if grade is None or cap is None:
        return grade
    return GRADES[max(GRADES.index(grade), GRADES.index(cap))]


@lru_cache(maxsize=4096)
def near_numbers(number: str, system: str = "doc:01") -> tuple[str, ...]:
    """The numbers one keystroke away, which batch linkage looks up by blind index (the index's
    numbers are never unsealed) to weigh a document one digit off, as real time does in clear.

    A resident ID failing its check: the *valid* numbers one keystroke away (a digit changed, two
    neighbours swapped, the check character itself wrong); the true number is most likely among
    them. A document without a check character (passport, other): every number with one digit
    changed or two neighbours swapped."""
    if system != "doc:01":
        return _one_edit(number)
    if len(number) != 18:
        return ()
    found = set()
    body = number[:17]
    found.add(body + _check(body))
    # The check of a number with one digit changed (or two swapped) is the body's weighted sum with
    # that digit's (or those two digits') share replaced: the same as _check of the changed body.
    values = [int(d) for d in body]
    total = sum(v * w for v, w in zip(values, _WEIGHTS))
    for spot in range(17):
        rest = total - values[spot] * _WEIGHTS[spot]
        for value, digit in enumerate("0123456789"):
            if digit != body[spot] and _CHECKS[(rest + value * _WEIGHTS[spot]) % 11] == number[17]:
                found.add(body[:spot] + digit + body[spot + 1:] + number[17])
        if spot < 16 and body[spot] != body[spot + 1]:
            swapped_sum = (rest - values[spot + 1] * _WEIGHTS[spot + 1] + values[spot + 1] * _WEIGHTS[spot]
                           + values[spot] * _WEIGHTS[spot + 1])
            if _CHECKS[swapped_sum % 11] == number[17]:
                found.add(body[:spot] + body[spot + 1] + body[spot] + body[spot + 2:] + number[17])
    return tuple(sorted(found - {number}))


def _one_edit(number: str) -> tuple[str, ...]:
    found = set()
    for spot, char in enumerate(number):
        if char.isdigit():
            found.update(number[:spot] + d + number[spot + 1:] for d in "0123456789" if d != char)
        if spot + 1 < len(number) and number[spot + 1] != char:
            found.add(number[:spot] + number[spot + 1] + char + number[spot + 2:])
    return tuple(sorted(found))


_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


_CHECKS = "10X98765432"


def _check(body: str) -> str:
    return _CHECKS[sum(int(d) * w for d, w in zip(body, _WEIGHTS)) % 11]


__all__ = ["CORROBORATING", "DocumentReading", "birth_close", "capped", "ceiling", "compare_birth", "corroborated",
           "identity_agrees", "near_numbers", "own_document", "phone_digits", "read_document", "sex_code",
           "year_only"]
