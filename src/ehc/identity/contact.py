"""Residents' names and mobile numbers: normalise what people type, mask what staff see.

Phones: mainland China mobile numbers only (11 digits, ``1[3-9]`` then 9 digits), stored without a
country prefix. Spaces, hyphens, brackets and full-width digits are accepted on the way in, as are
the ``+86``, ``0086`` and ``86`` prefixes.

Names, as printed on the document, normalised so that the same name always gives the same
blind-index key:

* Unicode NFC (one code point for ``é`` whichever way it was typed); zero-width characters dropped;
* full-width ASCII (``ＪＯＨＮ``) becomes half-width; curly apostrophes become ``'``;
* every dot look-alike used in minority and foreign names written in Chinese (``•`` U+2022,
  ``‧`` U+2027, ``．`` U+FF0E, ``・`` U+30FB, ``･`` U+FF65, ``∙`` U+2219, ``⋅`` U+22C5, and an
  ASCII ``.`` between two CJK characters) becomes the middle dot ``·`` (U+00B7), with no spaces
  around it: ``阿卜杜拉 • 买买提`` -> ``阿卜杜拉·买买提``;
* surrounding whitespace stripped, inner runs of whitespace (including U+3000) become one space.

A valid name is 1-64 characters of letters (any script, CJK included), combining marks, spaces,
``·``, ``-``, ``'`` and ``.``; it contains at least one letter and neither starts nor ends with
``·`` nor doubles it. Digits and other symbols are refused: they never appear in a legal name.
Case is kept as given.
"""

from __future__ import annotations

import re
import unicodedata

from ehc.kit.errors import Invalid, field_error

PHONE_FIELD = "phone"
NAME_FIELD = "name"
NAME_MAX_LENGTH = 64

MIDDLE_DOT = "\u00b7"

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_FULL_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_PHONE_SEPARATORS = dict.fromkeys(map(ord, "-()\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"), None)
_DOTS = dict.fromkeys(map(ord, "\u2022\u2027\uff0e\u30fb\uff65\u2219\u22c5"), ord(MIDDLE_DOT))
_APOSTROPHES = dict.fromkeys(map(ord, "\u2018\u2019\u02bc"), ord("'"))

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_DOT_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}]) ?\. ?(?=[{_CJK}])")
_SPACED_DOT = re.compile(r" ?\u00b7 ?")
_NAME_PUNCTUATION = frozenset(f" {MIDDLE_DOT}-'.")


def _phone_error(message: str) -> Invalid:
    return Invalid(message, code="phone_malformed", errors=[field_error(PHONE_FIELD, "phone_malformed", message)])


def normalise_phone(raw: str) -> str:
    """A mainland mobile number as its 11 digits, or ``Invalid`` (``phone_malformed``)."""
    if not isinstance(raw, str):
        raise _phone_error("The mobile number must be text.")
    text = "".join(raw.translate(_ZERO_WIDTH).split()).translate(_FULL_WIDTH).translate(_PHONE_SEPARATORS)
    if not text:
        raise _phone_error("Enter a mobile phone number.")
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    elif text.startswith(("+", "00")):
        raise _phone_error("Only mainland China mobile numbers (+86) are accepted.")
    if not _MOBILE.fullmatch(text):
        raise _phone_error("A mainland mobile number has 11 digits and starts with 13 to 19.")
    return text


def mask_phone(phone: str) -> str:
    """``13812345678`` -> ``138****5678``. Anything that is not a mobile number is all stars."""
    try:
        number = normalise_phone(phone)
    except Invalid:
        return "*" * len(phone) if isinstance(phone, str) else "***"
    return f"{number[:3]}****{number[-4:]}"


def _name_error(message: str) -> Invalid:
    return Invalid(message, code="name_invalid", errors=[field_error(NAME_FIELD, "name_invalid", message)])


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "L"


def canonical_name(raw: str) -> str:
    """A person's name in canonical form (see the module docstring), or ``Invalid`` (``name_invalid``)."""
    if not isinstance(raw, str):
        raise _name_error("The name must be text.")
    text = unicodedata.normalize("NFC", raw).translate(_ZERO_WIDTH)
    text = text.translate(_DOTS).translate(_FULL_WIDTH).translate(_APOSTROPHES)
    text = " ".join(text.split())
    text = _DOT_BETWEEN_CJK.sub(MIDDLE_DOT, text)
    text = _SPACED_DOT.sub(MIDDLE_DOT, text)
    if not text:
        raise _name_error("Enter the name as it appears on the identity document.")
    if len(text) > NAME_MAX_LENGTH:
        raise _name_error(f"A name has at most {NAME_MAX_LENGTH} characters; this one has {len(text)}.")
    for ch in text:
        if not (_is_letter(ch) or unicodedata.category(ch)[0] == "M" or ch in _NAME_PUNCTUATION):
            raise _name_error(
                f"A name may contain letters, spaces, '·', '-', apostrophes and full stops, not {ch!r}."
            )
    if not any(_is_letter(ch) for ch in text):
        raise _name_error("A name must contain at least one letter or Chinese character.")
    if text[0] == MIDDLE_DOT or text[-1] == MIDDLE_DOT or MIDDLE_DOT * 2 in text:
        raise _name_error("The middle dot '·' goes between the parts of a name.")
    return text


def mask_name(name: str) -> str:
    """A name as staff lists show it; punctuation and spaces stay, letters are starred.

    Chinese names (any CJK character present): keep the first and last character, star the rest
    (``张三丰`` -> ``张*丰``, ``阿卜杜拉·买买提`` -> ``阿***·**提``); two characters keep the first
    (``张三`` -> ``张*``); one character is ``*``.
    Other names: keep the first letter of each word (a run of letters), star the rest
    (``John Smith`` -> ``J*** S****``, ``Mary-Jane`` -> ``M***-J***``).
    """
    text = name.strip()
    positions = [i for i, ch in enumerate(text) if _is_letter(ch) or unicodedata.category(ch)[0] == "M"]
    keep: set[int] = set()
    if _CJK_CHAR.search(text):
        if len(positions) >= 2:
            keep.add(positions[0])
        if len(positions) >= 3:
            keep.add(positions[-1])
    else:
        previous = -2
        for i in positions:
            if i != previous + 1:
                keep.add(i)
            previous = i
    letters = set(positions)
    return "".join(ch if i in keep or i not in letters else "*" for i, ch in enumerate(text))
