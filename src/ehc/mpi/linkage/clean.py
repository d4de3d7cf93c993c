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

from ...identity import service as identity
from ...kit.errors import Invalid
from .. import xref
from ..matching import names

_SEX = {"1": "1", "男": "1", "m": "1", "male": "1", "2": "2", "女": "2", "f": "2", "female": "2",
        "0": "0", "未知": "0", "9": "9", "未说明": "9"}
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
    """The good rows as a linkage frame (plus ``line``, ``mrn``, ``id_system``, ``id_number``), and the
    rejects as ``(line, mrn, reasons)``."""

    frame: pd.DataFrame
    rejects: list[tuple[int, str, str]]


FRAME_COLUMNS = ("unique_id", "name", "name_py", "surname_py", "given_py", "name_initial", "sex", "birth_date",
                 "birth_date_swapped", "birth_year", "phone", "address", "region_code", "id_key")


def frame_row(unique_id: str, name: str | None, sex: str | None, birth: str | None, phone: str | None,
              address: str | None, region_code: str | None, id_key: str | None) -> tuple:
    """One row of a linkage frame, in :data:`FRAME_COLUMNS` order, from clean values."""
    name_py, surname_py, given_py = name_keys(name)
    swapped = None
    if birth and int(birth[8:10]) <= 12 and birth[5:7] != birth[8:10]:
        swapped = f"{birth[:4]}-{birth[8:10]}-{birth[5:7]}"  # what the date reads as with day and month swapped
    return (unique_id, name or None, name_py, surname_py, given_py, name_py[0] if name_py else None,
            sex if sex in ("1", "2") else None, birth, swapped, birth[:4] if birth else None,
            phone or None, address or None, region_code or None, id_key)


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


def _clean_phone(raw: str) -> tuple[str | None, str | None]:
    """Mobile numbers as their 11 digits; landlines (7-12 digits) kept as digits; else a reason."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None, None
    digits = re.sub(r"[\s\-()+]", "", text)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not digits.isdigit() or not 7 <= len(digits) <= 12:
        return None, "phone_invalid"
    return digits, None


def _clean_mrn(raw: str) -> tuple[str, str | None]:
    """The hospital number as the index stores it (:func:`..xref.normalise`: upper case, 1-40 letters,
    digits and . _ / -)."""
    if not raw.strip():
        return "", "mrn_missing"
    try:
        return xref.normalise(_MRN_SYSTEM, raw).value, None
    except Invalid:
        return raw.strip()[:_MRN_MAX], "mrn_invalid"


def _clean_document(id_type: str, raw: str) -> tuple[str | None, str | None, str | None]:
    """``(system, number, reason)``; the number normalised and checked like a registration's."""
    number = raw.strip()
    if not number:
        return None, None, None
    try:
        document = identity.parse_document((id_type.strip() or "01").zfill(2), number)
    except Invalid as problem:
        return None, None, "id_type_invalid" if "type" in problem.code else "id_number_invalid"
    return f"doc:{document.type.value}", document.number, None


def clean_rows(rows: pd.DataFrame, blind: Callable[[str], str] | None = None) -> CleanRows:
    """Check each row; derive the matching keys.

    ``blind`` turns ``"doc:01:<number>"`` into the document's blind index (the same as
    ``Identifier.blind_index``), so documents are compared without being unsealed on the index side;
    without it (benchmarks) the key is the text itself. Duplicate MRNs: the first row wins.
    """
    good: list[tuple] = []
    extra: list[tuple] = []
    rejects: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for line, mrn, name, sex, birth, phone, id_type, id_number, address, region in rows.itertuples(index=False):
        reasons = []
        mrn, reason = _clean_mrn(mrn)
        if reason:
            reasons.append(reason)
        elif mrn in seen:
            reasons.append("mrn_duplicate")
        name = name_for_matching(name) if name else ""
        sex_code = _SEX.get(sex.strip().lower(), None) if sex.strip() else "0"
        if sex_code is None:
            reasons.append("sex_invalid")
        birth_iso, reason = _clean_birth(birth)
        reasons += [reason] if reason else []
        phone_digits, reason = _clean_phone(phone)
        reasons += [reason] if reason else []
        system, number, reason = _clean_document(id_type, id_number)
        reasons += [reason] if reason else []
        region = region.strip()
        if region and not _REGION.fullmatch(region):
            reasons.append("region_code_invalid")
        if not name and not number:
            reasons.append("nothing_to_match_on")
        if reasons:
            rejects.append((line, mrn, " ".join(reasons)))
            continue
        seen.add(mrn)
        id_key = None
        if number:
            id_key = blind(f"{system}:{number}") if blind else f"{system}:{number}"
        good.append(frame_row(f"r{line}", name, sex_code, birth_iso, phone_digits,
                              normalise_address(address) or None, region or None, id_key))
        extra.append((line, mrn, system, number, sex_code))
    frame = pd.DataFrame(good, columns=list(FRAME_COLUMNS), dtype=object)
    info = pd.DataFrame(extra, columns=["line", "mrn", "id_system", "id_number", "sex_code"], dtype=object)
    return CleanRows(frame=pd.concat([frame, info], axis=1), rejects=rejects)

