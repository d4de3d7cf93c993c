"""GB/T 2260 administrative region codes: their form, which region contains which, and their names.

Pure and shared: accounts (an operator's region), institutions (where an institution is), the master
index and card uses (a regional operator's reach) all check and compare region codes the same way.
"""

from __future__ import annotations

import re
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


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    """Code -> the name it carries today (or last carried), from python-stdnum's copy of the published
    code lists (``stdnum/cn/loc.dat``: a province line, then its codes' last four digits indented, each
    with its names and the years they were valid, e.g. ``0104 county="[1990-]锦江区"``)."""
    names: dict[str, str] = {}
    province = ""
    for line in (Path(stdnum.__file__).parent / "cn" / "loc.dat").read_text(encoding="utf-8").splitlines():
        found = _LOC_LINE.match(line)
        if not found:
            continue
        indent, code, listed = found.groups()
        if not indent:
            province = code
            code = "0000"
        # The name still in use has no end year; otherwise the one used last.
        spans = [(m.group(2) or "9999", re.sub(r"\[[^\]]*\]", "", name))
                 for name in listed.split(",") if (m := re.match(r"(?:\[(\d*)-(\d*)\])?", name))]
        latest = max(spans)[1] if spans else ""
        if latest and latest not in ("市辖区", "县"):
            names[province + code] = latest
    return names


def region_name(code: str) -> str | None:
    """The region's name (成都市 for 510100, 锦江区 for 510104), or None for a code not in the lists."""
    return _names().get(code)
