"""Identity documents (value domain CV02.01.101): parse, normalise and mask document numbers.

One function turns what a resident or clerk typed into a :class:`Document`:
``parse_document(doc_type, raw)``. It normalises first (:func:`normalise_number`), then checks the
number against its type's format, raising :class:`~ehc.kit.errors.Invalid` with a field error on
``document_number`` (or ``document_type``) when it does not fit.

Normalisation, the same for every type, so that one document always gives one blind-index key:

* every whitespace character is removed (ASCII, U+3000 ideographic space, no-break spaces) as are
  zero-width characters pasted from other systems (U+200B-U+200D, U+2060, U+FEFF);
* full-width ASCII (``ＡＢ１２``, U+FF01-U+FF5E) becomes half-width;
* dash look-alikes (U+2010-U+2015, U+2212, U+FE63) become ``-``;
* ASCII letters are upper-cased (a resident ID's ``x`` becomes ``X``; passports are upper-case).
  Only ASCII is case-mapped: ``str.upper`` would turn ``ß`` into ``SS`` and invent characters;
* brackets ``()[]【】`` are dropped: no document format contains them, people type them around a
  check character (``H1234567(8)``);
* hyphens are dropped for the types whose format never contains one: resident ID card (01),
  passport (03), Hong Kong/Macao permit (06), Taiwan permit (07), birth certificate (08). The
  free-form types (02, 04, 05, 99) keep them.

Formats checked (after normalisation):

====  ==========================  =============================================================
code  document                    format
====  ==========================  =============================================================
01    resident ID card            GB 11643: 17 digits + check character (digit or ``X``); the
                                  check character must match, digits 7-14 must be a real date
                                  between 1880-01-01 and today. 15-digit first-generation numbers
                                  are refused (they must be converted to 18 digits).
02    household register          4-32 letters/digits/hyphens (see "free-form" below)
03    passport                    5-17 letters/digits (Chinese passports: E or G + 8 digits;
                                  foreign passports vary, so only the charset/length is checked)
04    military officer ID         free-form
05    driving licence             free-form (usually the 18-character ID number)
06    HK/Macao travel permit      ``H`` or ``M`` + 8 or 10 digits
07    Taiwan travel permit        8 or 10 digits
08    birth certificate           one letter + 9 digits (出生医学证明 number)
99    other                       free-form (e.g. the foreigner permanent residence card)
====  ==========================  =============================================================

"Free-form" is 4-32 characters of ASCII letters, digits, hyphens and CJK ideographs (military
officer numbers read like ``军字第1234567号``), with at least one letter or digit.

The resident ID's region code (first six digits) is returned but not checked against GB/T 2260:
``stdnum.cn.ric.validate`` does check it against its bundled snapshot of region history and
refuses codes missing from it, which would turn away real cards whose county was created, merged
or renamed outside the snapshot. We keep stdnum's check-digit and birth-date logic and leave
region plausibility to statistics and review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import NoReturn

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from ehc.kit.clock import today
from ehc.kit.errors import Invalid, field_error


class DocumentType(StrEnum):
    """CV02.01.101 identity document types."""

    RESIDENT_ID = "01"
    HOUSEHOLD_REGISTER = "02"
    PASSPORT = "03"
    MILITARY_OFFICER = "04"
    DRIVING_LICENCE = "05"
    HK_MACAO_PERMIT = "06"
    TAIWAN_PERMIT = "07"
    BIRTH_CERTIFICATE = "08"
    OTHER = "99"


#: English and Chinese labels for pages.
LABELS: dict[DocumentType, tuple[str, str]] = {
    DocumentType.RESIDENT_ID: ("Resident ID card", "居民身份证"),
    DocumentType.HOUSEHOLD_REGISTER: ("Household register", "居民户口簿"),
    DocumentType.PASSPORT: ("Passport", "护照"),
    DocumentType.MILITARY_OFFICER: ("Military officer ID", "军官证"),
    DocumentType.DRIVING_LICENCE: ("Driving licence", "驾驶证"),
    DocumentType.HK_MACAO_PERMIT: (
        "Mainland travel permit for Hong Kong and Macao residents",
        "港澳居民来往内地通行证",
    ),
    DocumentType.TAIWAN_PERMIT: ("Mainland travel permit for Taiwan residents", "台湾居民来往大陆通行证"),
    DocumentType.BIRTH_CERTIFICATE: ("Birth certificate", "出生医学证明"),
    DocumentType.OTHER: ("Other legal document", "其他法定有效证件"),
}

#: Sex codes (GB/T 2261.1) derived from a resident ID's 17th digit.
MALE = "1"
FEMALE = "2"

#: Earliest birth date a resident ID may encode; anything before is a typo, not a resident.
EARLIEST_BIRTH_DATE = date(1880, 1, 1)

NUMBER_FIELD = "document_number"
TYPE_FIELD = "document_type"


@dataclass(frozen=True)
class Document:
    """A parsed identity document. ``number`` is normalised; the other fields are derived from a
    resident ID card's number and are ``None`` for every other type."""

    type: DocumentType
    number: str
    birth_date: date | None = None
    sex: str | None = None
    region_code: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, DocumentType):
            object.__setattr__(self, "type", document_type(self.type))

    @property
    def blind_key(self) -> str:
        """The string the platform's blind index hashes: ``"<type code>:<normalised number>"``."""
        return f"{self.type.value}:{self.number}"

    @property
    def label(self) -> str:
        return LABELS[self.type][0]


# --- normalisation ---------------------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_FULL_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"), ord("-"))
_ASCII_UPPER = {cp: cp - 32 for cp in range(ord("a"), ord("z") + 1)}
_BRACKETS = dict.fromkeys(map(ord, "()[]【】"), None)
_NO_HYPHEN_TYPES = frozenset(
    {
        DocumentType.RESIDENT_ID,
        DocumentType.PASSPORT,
        DocumentType.HK_MACAO_PERMIT,
        DocumentType.TAIWAN_PERMIT,
        DocumentType.BIRTH_CERTIFICATE,
    }
)


def document_type(value: str | DocumentType) -> DocumentType:
    """The :class:`DocumentType` for a code such as ``"01"``; ``Invalid`` (``document_type_unknown``)
    for anything else."""
    if isinstance(value, DocumentType):
        return value
    code = value.strip() if isinstance(value, str) else value
    try:
        return DocumentType(code)
    except ValueError:
        known = ", ".join(t.value for t in DocumentType)
        message = f"Unknown document type {value!r}; use one of the CV02.01.101 codes {known}."
        raise Invalid(
            message,
            code="document_type_unknown",
            errors=[field_error(TYPE_FIELD, "document_type_unknown", message)],
        ) from None


def normalise_number(doc_type: str | DocumentType, raw: str) -> str:
    """The canonical form of a document number (see the module docstring for the rules)."""
    kind = document_type(doc_type)
    if not isinstance(raw, str):
        _malformed("The document number must be text.")
    text = "".join(raw.translate(_ZERO_WIDTH).split())
    text = text.translate(_FULL_WIDTH).translate(_DASHES).translate(_ASCII_UPPER).translate(_BRACKETS)
    if kind in _NO_HYPHEN_TYPES:
        text = text.replace("-", "")
    return text


# --- parsing ---------------------------------------------------------------------------------


def _fail(code: str, message: str) -> Invalid:
    return Invalid(message, code=code, errors=[field_error(NUMBER_FIELD, code, message)])


def _malformed(message: str) -> NoReturn:
    raise _fail("document_number_malformed", message)


_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
_PASSPORT = re.compile(r"[0-9A-Z]{5,17}")
_HK_MACAO = re.compile(r"[HM](?:[0-9]{8}|[0-9]{10})")
_TAIWAN = re.compile(r"[0-9]{8}|[0-9]{10}")
_BIRTH_CERT = re.compile(r"[A-Z][0-9]{9}")
_FREE_FORM = re.compile(r"[0-9A-Z\-\u3400-\u4dbf\u4e00-\u9fff]{4,32}")
_HAS_ALNUM = re.compile(r"[0-9A-Z\u3400-\u4dbf\u4e00-\u9fff]")


def _parse_resident_id(number: str) -> Document:
    if re.fullmatch(r"[0-9]{15}", number):
        # Not converted here: the 18-digit number adds a sequence check digit that only the issuing
        # police station's record makes certain (GB 11643-1999), so the holder gives their current one.
        raise _fail("resident_id_first_generation",
                    "Old 15-digit ID card numbers are not accepted and not converted: give the 18-digit number "
                    "of your current resident ID card.")
    if len(number) != 18:
        _malformed(f"A resident ID card number has 18 characters; this one has {len(number)}.")
    if not _RESIDENT_ID.fullmatch(number):
        _malformed("A resident ID card number is 17 digits followed by a digit or X.")
    if ric.calc_check_digit(number) != number[-1]:
        raise _fail(
            "document_checksum_mismatch",
            "The last character of this resident ID card number does not match the others; "
            "check for a mistyped digit.",
        )
    try:  # digits 7-14 (already checked to be digits); what ric.get_birth_date reads, at a fifth of its cost
        birth_date = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise _fail(
            "document_birth_date_invalid",
            f"The birth date in this resident ID card number ({number[6:14]}) is not a real date.",
        ) from None
    if birth_date > today():
        raise _fail(
            "document_birth_date_invalid",
            f"The birth date in this resident ID card number ({birth_date.isoformat()}) is in the future.",
        )
    if birth_date < EARLIEST_BIRTH_DATE:
        raise _fail(
            "document_birth_date_invalid",
            f"The birth date in this resident ID card number ({birth_date.isoformat()}) is not plausible.",
        )
    sex = MALE if int(number[16]) % 2 else FEMALE
    return Document(DocumentType.RESIDENT_ID, number, birth_date, sex, number[:6])


@dataclass(frozen=True)
class ResidentIdReading:
    """What a legacy system's resident ID number says, read leniently (:func:`read_resident_id`).

    ``number`` is the 18-character form (a 15-digit first-generation number converted); ``checked``
    tells whether its check character agrees with the other 17 (a number that fails is still strong
    evidence: most likely one digit is mistyped); ``birth_date`` and ``sex`` are what the number
    encodes (``None`` if its date digits are not a real date)."""

    number: str
    checked: bool
    converted: bool  # from a 15-digit first-generation number
    birth_date: date | None
    sex: str | None


def resident_id_from_15(number: str) -> str:
    """GB 11643 conversion of a 15-digit first-generation number: the century ``19`` goes before the
    two-digit year, and the check character is computed over the 17 digits."""
    if not re.fullmatch(r"[0-9]{15}", number):
        raise ValueError("a first-generation resident ID number is 15 digits")
    body = number[:6] + "19" + number[6:]
    return body + ric.calc_check_digit(body + "0")


def read_resident_id(raw: str) -> ResidentIdReading | None:
    """A resident ID number as a legacy list has it, for matching: 15 digits are converted, a failed
    check character is reported (not refused); ``None`` only when it is not a resident ID number at
    all (wrong length, letters). Registration keeps the strict :func:`parse_document`."""
    number = normalise_number(DocumentType.RESIDENT_ID, raw) if isinstance(raw, str) else ""
    converted = False
    if re.fullmatch(r"[0-9]{15}", number):
        number, converted = resident_id_from_15(number), True
    if not _RESIDENT_ID.fullmatch(number):
        return None
    checked = ric.calc_check_digit(number) == number[-1]
    try:
        born: date | None = ric.get_birth_date(number)
    except ValidationError:
        born = None
    if born is not None and not EARLIEST_BIRTH_DATE <= born <= today():
        born = None
    return ResidentIdReading(number, checked, converted, born, MALE if int(number[16]) % 2 else FEMALE)


def parse_document(doc_type: str | DocumentType, raw: str) -> Document:
    """Normalise and validate a document number; ``Invalid`` when it does not fit its type."""
    kind = document_type(doc_type)
    number = normalise_number(kind, raw)
    if not number:
        _malformed("Enter the document number.")
    if kind is DocumentType.RESIDENT_ID:
        return _parse_resident_id(number)
    if kind is DocumentType.PASSPORT:
        if not _PASSPORT.fullmatch(number):
            _malformed("A passport number is 5 to 17 letters and digits.")
    elif kind is DocumentType.HK_MACAO_PERMIT:
        if not _HK_MACAO.fullmatch(number):
            _malformed("A Hong Kong/Macao travel permit number is H or M followed by 8 or 10 digits.")
    elif kind is DocumentType.TAIWAN_PERMIT:
        if not _TAIWAN.fullmatch(number):
            _malformed("A Taiwan travel permit number is 8 or 10 digits.")
    elif kind is DocumentType.BIRTH_CERTIFICATE:
        if not _BIRTH_CERT.fullmatch(number):
            _malformed("A birth certificate number is one letter followed by 9 digits.")
    elif not (_FREE_FORM.fullmatch(number) and _HAS_ALNUM.search(number)):
        _malformed(f"{LABELS[kind][0]} numbers are 4 to 32 letters, digits or hyphens.")
    return Document(kind, number)


# --- display ---------------------------------------------------------------------------------


def mask_number(doc: Document | tuple[str | DocumentType, str]) -> str:
    """The number as staff may see it, same length as the original.

    Resident ID card: first 3 and last 4 characters (``510***********123X``), which hides the
    county, the birth date and the sequence. Every other type: first 1 and last 2 characters
    (``E******78``). Numbers of 3 characters or fewer are all stars.
    """
    if isinstance(doc, Document):
        kind, number = doc.type, doc.number
    else:
        kind, number = document_type(doc[0]), doc[1]
    if kind is DocumentType.RESIDENT_ID and len(number) >= 8:
        head, tail = 3, 4
    else:
        head, tail = 1, 2
    if len(number) <= head + tail:
        return "*" * len(number)
    return number[:head] + "*" * (len(number) - head - tail) + number[-tail:]
