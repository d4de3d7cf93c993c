"""Comparing people's names for matching: Chinese characters, pinyin, similar sounds and shapes.

A name typed at another hospital is often not the same characters: a homophone picked from the
input method's list (王慧 / 王惠), a similar-shaped character misread from handwriting (王玉 / 王主),
a nickname or a child's name (小明, 明明, 阿明 for 明), or a foreign name in latin letters with a
typo. :func:`compare` puts two names on one of these levels, best first:

``exact``     the same characters after normalisation (full-width letters, spaces, middle dots);
``homophone`` the same pinyin without tones (different characters that sound alike);
``close``     the same surname (or one that sounds or looks alike) and a given name with one character
              changed (similar shape or any other), or the nickname form of the other (小明 / 明明 /
              阿明 / 明);
``fuzzy``     Jaro-Winkler similarity of the toneless pinyin (or of the latin letters) at least 0.9;
``different`` anything else.

Latin names (``John Smith``) have no pinyin: their "pinyin" is their lower-case letters, so they fall
through to ``fuzzy`` (Jaro-Winkler) gracefully.

Surnames are read with their surname pronunciation (单 is ``shan``, not ``dan``; 曾 ``zeng``; 解
``xie``), and the 复姓 compound surnames (欧阳, 司马 ...) are split off whole.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import JaroWinkler, Levenshtein

LEVELS = ("exact", "homophone", "close", "fuzzy", "different")

COMPOUND_SURNAMES = frozenset((
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "令狐",
    "夏侯", "澹台", "端木", "万俟", "单于", "呼延", "独孤", "南宫", "轩辕", "闻人", "西门", "百里", "东郭",
    "公冶", "太叔", "申屠", "钟离", "宗政", "濮阳", "淳于", "仲孙", "赫连", "左丘", "拓跋", "第五",
))

# Surnames whose reading differs from the character's everyday one (多音字 as a surname).
SURNAME_READINGS = {
    "单": "shan", "解": "xie", "区": "ou", "查": "zha", "曾": "zeng", "仇": "qiu", "朴": "piao", "乐": "yue",
    "盖": "ge", "覃": "qin", "缪": "miao", "秘": "bi", "种": "chong", "员": "yun", "翟": "zhai", "召": "shao",
    "繁": "po", "句": "gou", "黑": "he", "能": "nai", "薄": "bo", "隗": "wei", "柏": "bai", "祭": "zhai",
    "重": "chong", "折": "she", "乜": "nie", "冼": "xian", "洗": "xian", "谌": "chen", "尉迟": "yuchi",
    "万俟": "moqi", "单于": "chanyu", "长孙": "zhangsun", "沈": "shen", "藏": "zang", "卜": "bu", "宿": "su",
    "华": "hua", "过": "guo", "纪": "ji", "尉": "yu", "燕": "yan", "任": "ren", "那": "na", "阚": "kan",
}

# Similar-shaped characters (a small curated table; the test-set generator draws from the same one).
SIMILAR_SHAPES: tuple[tuple[str, ...], ...] = (
    ("王", "玉", "主"), ("己", "已"), ("未", "末"), ("土", "士"), ("日", "曰"), ("人", "入"),
    ("天", "夭"), ("大", "太", "犬"), ("戊", "戌"), ("候", "侯"), ("贝", "见"), ("免", "兔"),
    ("乌", "鸟"), ("师", "帅"), ("季", "李"), ("杨", "扬", "场"), ("张", "涨"), ("洋", "详"),
    ("明", "朋"), ("徐", "涂"), ("刘", "划"), ("陈", "阵"), ("林", "材"), ("伟", "纬", "玮"),
    ("军", "车"), ("莉", "利"), ("佳", "桂"), ("怡", "治"), ("浩", "皓"), ("峰", "锋", "蜂"),
    ("晴", "睛", "清"), ("蓉", "容"), ("婷", "亭"), ("瑛", "英"), ("琳", "淋"), ("雯", "雪"),
    ("斌", "彬"), ("淑", "叔"), ("颖", "频"), ("辉", "晖"), ("凤", "风"), ("华", "桦"),
    ("杰", "烈"), ("健", "建"), ("秀", "季"), ("春", "椿"), ("梅", "海"), ("娟", "绢"),
    ("勇", "甬"), ("宇", "字"), ("丽", "俪"), ("静", "净"), ("波", "坡"), ("涛", "寿"),
    ("超", "起"), ("飞", "弋"), ("帆", "凡"), ("平", "苹"), ("刚", "岗"), ("文", "义"), ("振", "震"),
)

NICKNAME_PREFIXES = ("小", "阿", "老")

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_DROP = re.compile(r"[\s\u00b7\u2022\u2027\u30fb\uff65\u2219\u22c5.,'\-]+")
_FULL_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}


def normalise(name: str | None) -> str:
    """Characters only: NFKC (full-width to half-width), lower case, no spaces, dots, hyphens or
    apostrophes (``阿卜杜拉 · 买买提`` and ``阿卜杜拉·买买提`` are one name; ``O'Brien`` is ``obrien``)."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", name.translate(_FULL_WIDTH)).lower()
    return _DROP.sub("", text)


def is_chinese(name: str) -> bool:
    return bool(_CJK.search(name))


@dataclass(frozen=True)
class Parsed:
    """A name split for comparison and blocking; all parts normalised."""

    text: str  # the whole name, normalised
    surname: str
    given: str
    pinyin: str  # toneless pinyin of the whole name, no spaces (latin names: their letters)
    surname_pinyin: str
    given_pinyin: str
    chinese: bool


@lru_cache(maxsize=65536)
def parse(name: str | None) -> Parsed:
    """Split a name into surname and given name and read it in toneless pinyin.

    Chinese: a compound surname if the name starts with one (and is longer than it), else the first
    character. Latin: the last word is the surname (``John Smith``), unless written
    ``SMITH, John``.
    """
    return _parse(name, None)


def parse_read(name: str | None, surname_pinyin: str | None, given_pinyin: str | None) -> Parsed:
    """:func:`parse` of a name whose surname and given name were already read in pinyin by an
    earlier ``parse`` of the same name (a linkage frame's ``surname_py``, ``given_py``; ``None`` for
    ``""``): the same result without reading the pinyin again, which is most of the cost of a parse.
    Batch linkage compares the rows of a million-row list with each other: more distinct names than
    :func:`parse`'s cache holds."""
    return _parse(name, (surname_pinyin or "", given_pinyin or ""))


def _parse(name: str | None, read: tuple[str, str] | None) -> Parsed:
    raw = (name or "").strip()
    text = normalise(raw)
    if not text:
        return Parsed("", "", "", "", "", "", False)
    if is_chinese(text):
        cut = 2 if len(text) > 2 and text[:2] in COMPOUND_SURNAMES else 1
        surname, given = text[:cut], text[cut:]
        if read is None:
            surname_pinyin = SURNAME_READINGS.get(surname) or _pinyin(surname)
            given_pinyin = _pinyin(given)
        else:
            surname_pinyin, given_pinyin = read
        return Parsed(text, surname, given, surname_pinyin + given_pinyin, surname_pinyin, given_pinyin, True)
    if "," in raw:
        surname_part, _, given_part = raw.partition(",")
    else:
        words = raw.split()
        surname_part, given_part = (words[-1], " ".join(words[:-1])) if len(words) > 1 else (raw, "")
    surname, given = normalise(surname_part), normalise(given_part)
    return Parsed(text, surname, given, given + surname, surname, given, False)


@lru_cache(maxsize=1 << 16)
def _pinyin(text: str) -> str:
    """Toneless pinyin of a surname or a given name (cached: given names repeat far more than whole
    names do)."""
    # heavy: pypinyin loads its dictionaries on import (about 0.25 s); only names that are read need it
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(text, style=Style.NORMAL, errors=lambda chars: list(chars.lower())))


def pinyin_with_tones(name: str) -> str:
    """The name in pinyin with tone numbers (``wang2 hui4``), surname read as a surname; for display."""
    # heavy: pypinyin loads its dictionaries on import (about 0.25 s); only names that are read need it
    from pypinyin import Style, lazy_pinyin

    parsed = parse(name)
    if not parsed.chinese:
        return parsed.text
    surname = lazy_pinyin(parsed.surname, style=Style.TONE3)
    if parsed.surname in SURNAME_READINGS:
        surname = [SURNAME_READINGS[parsed.surname]]
    return " ".join(surname + lazy_pinyin(parsed.given, style=Style.TONE3))


@lru_cache(maxsize=1)
def _shape_pairs() -> frozenset[tuple[str, str]]:
    return frozenset((a, b) for group in SIMILAR_SHAPES for a in group for b in group if a != b)


def similar_shape(a: str, b: str) -> bool:
    return (a, b) in _shape_pairs()


def nickname_forms(given: str) -> set[str]:
    """The informal forms of a given name: 明 -> 小明, 阿明, 老明, 明明; 建明 -> 小明, 明明, 建."""
    if not given:
        return set()
    last = given[-1]
    forms = {prefix + last for prefix in NICKNAME_PREFIXES} | {last + last}
    if len(given) > 1:
        forms.add(given[0])
    return forms - {given}


def _nickname_related(a: str, b: str) -> bool:
    return bool(a and b) and (b in nickname_forms(a) or a in nickname_forms(b) or _core(a) == _core(b) != "")


def _core(given: str) -> str:
    """明明 / 小明 / 阿明 -> 明 (the informal forms' shared character); anything else: itself."""
    if len(given) == 2 and given[0] in NICKNAME_PREFIXES:
        return given[1]
    if len(given) == 2 and given[0] == given[1]:
        return given[1]
    return given


def _one_char_differs(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def _words_within(a: str, b: str) -> bool:
    """Every word of the shorter latin name is a word of the longer one."""
    left, right = ({normalise(w) for w in text.replace(",", " ").split()} - {""} for text in (a, b))
    shorter, longer = sorted((left, right), key=len)
    return bool(shorter) and shorter < longer


def compare(a: str | None, b: str | None, *, parsed: tuple[Parsed, Parsed] | None = None) -> str | None:
    """The comparison level of two names (see the module docstring); ``None`` if either is missing.
    ``parsed``: ``(parse(a), parse(b))`` when the caller has them already."""
    left, right = parsed or (parse(a), parse(b))
    if not left.text or not right.text:
        return None
    if left.text == right.text:
        return "exact"
    if left.chinese and right.chinese:
        if left.pinyin == right.pinyin:
            return "homophone"
        same_surname = (left.surname == right.surname or left.surname_pinyin == right.surname_pinyin
                        or similar_shape(left.surname, right.surname))
        given_close = (left.given == right.given or _one_char_differs(left.given, right.given)
                       or _nickname_related(left.given, right.given))
        if same_surname and given_close:
            return "close"
    elif not left.chinese and not right.chinese:
        if left.surname == right.given and left.given == right.surname:  # surname and given name swapped
            return "close"
        if Levenshtein.distance(left.text, right.text) == 1:
            return "close"
        if _words_within(a or "", b or ""):  # one part missing: "elton" / "elton smith"
            return "close"
    if JaroWinkler.similarity(left.pinyin, right.pinyin) >= 0.9:
        return "fuzzy"
    return "different"


__all__ = ["LEVELS", "Parsed", "compare", "is_chinese", "nickname_forms", "normalise", "parse", "parse_read",
           "pinyin_with_tones", "similar_shape"]
