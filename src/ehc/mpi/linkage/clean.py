"""Step 1b: check each row of the list and derive the matching keys (toneless pinyin, the document's
blind index). Bad rows become rejects with reason codes; nothing here raises for a bad row."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import pandas as pd

from ...kit.errors import Invalid
from .. import xref
from ..matching import evidence, names, places

_DATE = re.compile(r"(\d{4})\D?(\d{1,2})\D?(\d{1,2})\D?")
_REGION = re.compile(r"\d{6}")
_MRN_MAX = 64  # how much of a bad MRN the rejects file repeats
_MRN_SYSTEM = xref.System("mrn", "x", "mrn:x")  # the format is the same for every institution


@lru_cache(maxsize=1 << 20)
def name_keys(name: str | None) -> tuple[str | None, str | None, str | None]:
    """``(name_py, surname_py, given_py)`` as the real-time matcher reads them (:mod:`..matching.names`:
    surname readings such as 单 shan, compound surnames): ``张伟明`` -> ``zhangweiming, zhang, weiming``.
    Cached: many people share a name, and pinyin is most of the cost of preparing a row."""
    if not name:
        return None, None, None
    parsed = names.parse(name)
    return parsed.pinyin or None, parsed.surname_pinyin or None, parsed.given_pinyin or None


def name_for_matching(raw: str) -> str:
    """The name as the matcher compares characters (:func:`..matching.names.normalise`: NFKC, lower
    case, no spaces or dots). Not a check of what a resident typed: that is
    ``identity.service.canonical_name``."""
    return names.normalise(raw)


def normalise_address(raw: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw))


@dataclass(frozen=True)
class CleanRows:
    """The rows as a linkage frame (plus ``line``, ``mrn``, ``id_system``, ``id_number``, ``sex_code``,
    ``id_near``: the blind keys of the valid numbers one keystroke from a number failing its check),
    the rejects as ``(line, mrn, reasons)`` and the notes on rows kept (:data:`NOTES`)."""

    frame: pd.DataFrame
    rejects: list[tuple[int, str, str]]
    notes: list[tuple[int, str, str]] = ()  # (line, mrn, codes): rows kept with a field set aside or fixed


FRAME_COLUMNS = ("unique_id", "name", "name_py", "surname_py", "given_py", "name_initial", "sex", "birth_date",
                 "birth_date_swapped", "birth_year", "phone", "address", "region_code", "id_key", "city", "street")

street_key = places.street_of  # the real-time matcher's road + house number token, shared


def frame_row(unique_id: str, name: str | None, sex: str | None, birth: str | None, phone: str | None,
              address: str | None, region_code: str | None, id_key: str | None) -> tuple:
    """One row of a linkage frame, in :data:`FRAME_COLUMNS` order, from clean values."""
    name_py, surname_py, given_py = name_keys(name)
    swapped = None
    if birth and int(birth[8:10]) <= 12 and birth[5:7] != birth[8:10]:
        swapped = f"{birth[:4]}-{birth[8:10]}-{birth[5:7]}"  # what the date reads as with day and month swapped
    city = places.city_of(region_code, address)
    return (unique_id, name or None, name_py, surname_py, given_py, name_py[0] if name_py else None,
            sex if sex in ("1", "2") else None, birth, swapped, birth[:4] if birth else None,
            phone or None, address or None, region_code or None, id_key, city, street_key(address))


def _clean_birth(raw: str) -> tuple[str | None, str | None]:
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None, None
    found = _DATE.fullmatch(text.split(" ")[0].split("T")[0])
    if not found:
        return None, "birth_date_invalid"
    try:
        born = date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None, "birth_date_invalid"
    if born > date.today() or born.year < 1880:
        return None, "birth_date_out_of_range"
    return born.isoformat(), None


def _clean_mrn(raw: str) -> tuple[str, str | None]:
    """The hospital number as the index stores it (:func:`..xref.normalise`: upper case, 1-40 letters,
    digits and . _ / -)."""
    if not raw.strip():
        return "", "mrn_missing"
    try:
        return xref.normalise(_MRN_SYSTEM, raw).value, None
    except Invalid:
        return raw.strip()[:_MRN_MAX], "mrn_invalid"



# What a clerk reads in rejects.csv and notes.csv, per code.
REJECTS = {
    "mrn_missing": "no patient number (MRN): nothing to link it to",
    "mrn_invalid": "the patient number has characters a number cannot have",
    "mrn_duplicate": "the same patient number again, further up the list",
    "nothing_to_match_on": "no document and no name with a birth date or phone: nothing to match on",
}
NOTES = {
    "id_number_converted": "15-digit ID number converted to its 18-digit form",
    "id_number_failed_check": "ID number fails its check character (one digit mistyped?): weighed, never decisive",
    "id_number_unreadable": "ID number unreadable: set aside",
    "id_type_unknown": "document type unknown: document set aside",
    "document_not_own": "the ID number's birth date or sex contradicts the row's (a guardian's?): set aside",
    "birth_date_unreadable": "birth date unreadable: set aside",
    "birth_date_out_of_range": "birth date in the future or before 1880: set aside",
    "phone_unreadable": "phone unreadable: set aside",
    "region_code_unreadable": "region code is not six digits: set aside",
}


def _clean_birth_lenient(raw: str) -> tuple[str | None, str | None]:
    born, reason = _clean_birth(raw)
    return born, ("birth_date_unreadable" if reason == "birth_date_invalid" else reason)


def clean_rows(rows: pd.DataFrame, blind: Callable[[str], str] | None = None) -> CleanRows:
    """Read each row as the real-time matcher reads a submission (:mod:`..matching.evidence`); derive
    the matching keys. Only rows that cannot be linked are rejected (no MRN, a duplicate MRN,
    nothing to match on); an unreadable field is set aside and noted, a 15-digit ID number
    converted, one failing its check kept as partial evidence, a guardian's ID set aside.

    ``blind`` turns ``"doc:01:<number>"`` into the document's blind index (the same as
    ``Identifier.blind_index``), so documents are compared without being unsealed on the index side;
    without it (benchmarks) the key is the text itself. Duplicate MRNs: the first row wins.
    """
    blind = blind or (lambda key: key)
    good: list[tuple] = []
    extra: list[tuple] = []
    rejects: list[tuple[int, str, str]] = []
    notes: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for line, mrn, name, sex, birth, phone, id_type, id_number, address, region in rows.itertuples(index=False):
        reasons, noted = [], []
        mrn, reason = _clean_mrn(mrn)
        if reason:
            reasons.append(reason)
        elif mrn in seen:
            reasons.append("mrn_duplicate")
        name = name_for_matching(name) if name else ""
        sex_code = evidence.sex_code(sex)
        birth_iso, reason = _clean_birth_lenient(birth)
        noted += [reason] if reason else []
        phone_digits = evidence.phone_digits(phone)
        if phone.strip() and phone_digits is None:
            noted.append("phone_unreadable")
        reading, reason = evidence.read_document(id_type, id_number)
        noted += [reason] if reason else []
        id_key, near = None, ()
        if reading is not None:
            if reading.converted:
                noted.append("id_number_converted")
            if not evidence.own_document(reading, date.fromisoformat(birth_iso) if birth_iso else None, sex_code):
                noted.append("document_not_own")
                reading = None
            elif not reading.checked:
                noted.append("id_number_failed_check")
                near = tuple(blind(f"doc:01:{number}") for number in evidence.near_numbers(reading.number))
            else:
                id_key = blind(f"{reading.system}:{reading.number}")
                if reading.system != "doc:01":  # no check character: a typo cannot be told, only weighed
                    near = tuple(blind(f"{reading.system}:{n}") for n in evidence.near_numbers(reading.number, reading.system))
        region = region.strip()
        if region and not _REGION.fullmatch(region):
            noted.append("region_code_unreadable")
            region = ""
        if not reading and not (name and (birth_iso or phone_digits)):
            reasons.append("nothing_to_match_on")
        if reasons:
            rejects.append((line, mrn, " ".join(reasons)))
            continue
        seen.add(mrn)
        if noted:
            notes.append((line, mrn, " ".join(noted)))
        good.append(frame_row(f"r{line}", name, sex_code, birth_iso, phone_digits,
                              normalise_address(address) or None, region or None, id_key))
        extra.append((line, mrn, reading.system if reading else None, reading.number if reading else None,
                      sex_code, near))
    frame = pd.DataFrame(good, columns=list(FRAME_COLUMNS), dtype=object)
    info = pd.DataFrame(extra, columns=["line", "mrn", "id_system", "id_number", "sex_code", "id_near"], dtype=object)
    return CleanRows(frame=pd.concat([frame, info], axis=1), rejects=rejects, notes=notes)
