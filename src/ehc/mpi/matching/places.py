"""Where an address is: its GB/T 2260 region read from the text, for lists that carry no region code.

The names come from python-stdnum's region database (``stdnum/cn/loc.dat``, maintained with the
library, taken from the published code lists), which keeps every name a code has carried, with the
years it was valid: abolished and renamed districts (南京 白下区 [1983-2013], 北京 崇文区
[-2010]) are still found. An address is read as: a province name (or its short form: 四川, 广西) at
the start, then the longest county-level name found in the text within that province; without a
province, a county name that is unique in the country. The answer is the county's code, and its
city (first four digits) is what blocking uses: abolished districts were merged into a neighbour
of the same city, so the city stays right even when the county code is an old one.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ...kit.regions import code_lists

_ENDINGS = frozenset("区县市旗")
_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")
_NOT_PLACES = ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划")


@lru_cache(maxsize=1)
def _gazetteer() -> tuple[dict[str, str], dict[str, dict[str, set[tuple[str, bool]]]],
                         dict[str, set[tuple[str, bool]]]]:
    """(province name or short form -> 2-digit code, province -> {county name -> (code, in use)},
    county name -> (code, in use) over the country)."""
    provinces: dict[str, str] = {}
    counties: dict[str, dict[str, set[tuple[str, bool]]]] = {}
    anywhere: dict[str, set[tuple[str, bool]]] = {}
    for entry in code_lists():
        province, name = entry.code[:2], entry.name
        if entry.code.endswith("0000"):
            provinces[name] = province
            short = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s) and len(name) > len(s) + 1), None)
            if short:
                provinces.setdefault(short, province)
            continue
        if entry.code.endswith("00") or len(name) < 2 or name in _NOT_PLACES:
            continue
        counties.setdefault(province, {}).setdefault(name, set()).add((entry.code, entry.in_use))
        anywhere.setdefault(name, set()).add((entry.code, entry.in_use))
    return provinces, counties, anywhere


@lru_cache(maxsize=1 << 16)
def region_of(address: str | None) -> str | None:
    """The six-digit region code an address names, or ``None`` when it names none (or several)."""
    if not address:
        return None
    provinces, counties, anywhere = _answers()
    text = address.strip()
    province = next((provinces[text[:n]] for n in (7, 5, 4, 3, 2) if text[:n] in provinces), None)
    table = counties.get(province, {}) if province else anywhere
    # County-level names end in 区, 县, 市 or 旗: try the names ending at each such character of the
    # first 24, longest first; the first that names one place wins.
    for end in (i + 1 for i, char in enumerate(text[:24]) if char in _ENDINGS):
        for start in range(max(0, end - 10), end - 1):
            found = table.get(text[start:end])
            if found:
                return found
    return None


@lru_cache(maxsize=1)
def _answers() -> tuple[dict[str, str], dict[str, dict[str, str | None]], dict[str, str | None]]:
    """The gazetteer with each county name's answer (:func:`_one`) worked out once, not at each
    address that names it."""
    provinces, counties, anywhere = _gazetteer()
    return (provinces, {province: {name: _one(entries) for name, entries in table.items()}
                        for province, table in counties.items()},
            {name: _one(entries) for name, entries in anywhere.items()})


def _one(entries: set[tuple[str, bool]]) -> str | None:
    """One code for a name: the only one, else the only one still in use, else ``None``; codes of
    one city count as one (the county code is then the lowest)."""
    for candidates in ({code for code, _ in entries}, {code for code, current in entries if current}):
        if candidates and len({code[:4] for code in candidates}) == 1:
            return min(candidates)
    return None


# A road, its section when it has one (成都's 人民南路二段, 红星路1段), and the house number.
_STREET = re.compile(r"([\u4e00-\u9fff]{1,8}?(?:大道|大街|路|街|巷|道|村|里))(?:([一二三四五六七八九十\d]{1,3})段)?(\d+)号")
_SECTION_NUMBERS = {c: str(i) for i, c in enumerate("一二三四五六七八九", start=1)}


def street_of(address: str | None) -> str | None:
    """The road, its section and the house number (``人民路12``, ``红星路1段8``): an address token for
    blocking that a move within the building, a dropped flat number or an abbreviated province keeps.
    A section is written in digits whichever way it was given (一段, 1段). Without the city: an
    abbreviated address (``市辖区幸福路205号``) often names no county that can be read, and the token
    is only ever used together with a part of the name, which keeps its blocks small."""
    found = _STREET.search(address) if address else None
    if not found:
        return None
    # The road's own name: what precedes it up to the last province, city or county word is the
    # place, which an abbreviated address drops (成都市锦江区人民路 -> 人民路).
    road = re.sub(r"^.*[省市区县旗]", "", found[1]) or found[1]
    section = _section_number(found[2]) if found[2] else ""
    return f"{road}{section + '段' if section else ''}{found[3]}"


def _section_number(written: str) -> str:
    """A road section's number in digits, however it was written (二段, 2段, 十二段)."""
    if written.isdigit():
        return str(int(written))
    if written.startswith("十"):  # 十, 十一 ... 十九
        return str(10 + int(_SECTION_NUMBERS.get(written[1:], "0")))
    if written.endswith("十"):  # 二十, 三十
        return str(10 * int(_SECTION_NUMBERS.get(written[0], "0")))
    if len(written) == 3 and written[1] == "十":  # 二十一
        return str(10 * int(_SECTION_NUMBERS.get(written[0], "0")) + int(_SECTION_NUMBERS.get(written[2], "0")))
    return _SECTION_NUMBERS.get(written, written)


def city_of(region_code: str | None, address: str | None) -> str | None:
    """The city (first four digits of the region code) from the code when given, else read from
    the address."""
    if region_code and len(region_code) >= 4:
        return region_code[:4]
    found = region_of(address)
    return found[:4] if found else None


__all__ = ["city_of", "region_of", "street_of"]
