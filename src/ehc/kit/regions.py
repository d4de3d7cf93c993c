"""GB/T 2260 administrative region codes: their form, which region contains which, and their names.

Pure and shared: accounts (an operator's region), institutions (where an institution is), the master
index and card uses (a regional operator's reach) all check and compare region codes the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import stdnum

# The 34 province-level divisions: the first two digits of every region code.
PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
    "71", "81", "82",
})


def region_problem(code: object) -> str | None:
    """Why ``code`` is not a GB/T 2260 region code, or None when its form is right.

    Checked: six digits, a real province, and no county digits under a missing prefecture (``51 00 04``
    does not exist). Not checked: that the prefecture or county exists today; region codes change
    every year and the registry must accept an institution in a county created after this release.
    """
    if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
        return "A region code is 6 digits (GB/T 2260), e.g. 510104."
    if code[:2] not in PROVINCES:
        return f"{code[:2]} is not a province-level code (GB/T 2260)."
    if code[2:4] == "00" and code[4:] != "00":
        return "A county-level code needs a prefecture (digits 3-4 cannot be 00 when digits 5-6 are not)."
    return None


def region_prefix(code: str) -> str:
    """The part of a region code that its sub-regions share: 510000 → 51, 510100 → 5101,
    510104 → 510104. A region contains every code that starts with its prefix."""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


def region_within(code: str, region: str) -> bool:
    return code.startswith(region_prefix(region))


_LOC_LINE = re.compile(r'^(\s*)(\d+)\s+(?:province|county|prefecture)="([^"]*)"')
_YEARS = re.compile(r"\[(\d*)-(\d*)\]")


@dataclass(frozen=True)
class RegionName:
    code: str  # six digits
    name: str
    in_use: bool  # no end year: the name the code carries today
    until: int  # the last year it was used (9999 while in use)


@lru_cache(maxsize=1)
def code_lists() -> tuple[RegionName, ...]:
    """Every name every code has carried, from python-stdnum's copy of the published code lists
    (``stdnum/cn/loc.dat``: a province line, then its codes' last four digits indented, each with
    its names and the years they were valid, e.g. ``0104 county="[1990-]锦江区"``). Abolished and
    renamed districts are kept: old addresses and old records still name them."""
    found: list[RegionName] = []
    province = ""
    for line in (Path(stdnum.__file__).parent / "cn" / "loc.dat").read_text(encoding="utf-8").splitlines():
        match = _LOC_LINE.match(line)
        if not match:
            continue
        indent, code, listed = match.groups()
        if not indent:
            province, code = code, "0000"
        for name in listed.split(","):
            years = _YEARS.match(name)
            in_use = years is None or not years.group(2)
            found.append(RegionName(province + code, _YEARS.sub("", name), in_use,
                                    9999 if in_use else int(years.group(2))))
    return tuple(found)


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    """Code -> the name it carries today, or the one it carried last."""
    latest: dict[str, RegionName] = {}
    for entry in code_lists():
        if entry.name and entry.name not in ("市辖区", "县") and (
                entry.code not in latest or entry.until >= latest[entry.code].until):
            latest[entry.code] = entry
    return {code: entry.name for code, entry in latest.items()}


def region_name(code: str) -> str | None:
    """The region's name (成都市 for 510100, 锦江区 for 510104), or None for a code not in the lists."""
    return _names().get(code)
