"""Page languages: which one a request gets, and the ``t(key)`` helper templates call.

Every UI string lives in ``locales/<lang>.json`` (nested objects, looked up with dotted keys such
as ``apply.name.label``). A key missing from a locale falls back to English, then to the key itself,
so a forgotten string shows up as an obvious ``apply.foo`` rather than an error page; the tests
check that both files have the same keys.

Choice of language, first match wins: ``?lang=en|zh`` (remembered in the ``lang`` cookie), the
``lang`` cookie, the browser's ``Accept-Language``, then Simplified Chinese.
"""

from __future__ import annotations

import json
import string
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from starlette.requests import Request

LOCALES_DIR = Path(__file__).parent / "locales"
SUPPORTED = ("zh", "en")
DEFAULT = "zh"
FALLBACK = "en"
COOKIE = "lang"
# What <html lang> and Content-Language say for each supported language.
HTML_LANG = {"zh": "zh-CN", "en": "en"}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


@cache
def catalogue(lang: str) -> dict[str, Any]:
    """All strings of one language, keyed by dotted path."""
    with open(LOCALES_DIR / f"{lang}.json", encoding="utf-8") as fh:
        return _flatten(json.load(fh))


class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_FORMATTER = string.Formatter()


class Translator:
    """``t("key", name=value)``: the string for ``key`` in this language, ``{name}`` filled in."""

    def __init__(self, lang: str) -> None:
        if lang not in SUPPORTED:
            raise ValueError(f"unsupported language {lang!r}")
        self.lang = lang
        self.html_lang = HTML_LANG[lang]
        self._own = catalogue(lang)
        self._fallback = catalogue(FALLBACK)

    def has(self, key: str) -> bool:
        return key in self._own or key in self._fallback

    def __call__(self, key: str, **params: Any) -> str:
        text = self._own.get(key, self._fallback.get(key, key))
        if not isinstance(text, str):
            return key
        return _FORMATTER.vformat(text, (), _KeepMissing(params)) if params else text

    def plural(self, key: str, n: int, **params: Any) -> str:
        """``key.<category>`` for ``n`` by the language's CLDR plural rules (Babel): English has "one"
        and "other" ("1 minute", "2 minutes"), Chinese only "other"."""
        category = Locale.parse(self.lang).plural_form(n)
        chosen = f"{key}.{category}" if self.has(f"{key}.{category}") else f"{key}.other"
        return self(chosen, n=n, **params)

    def duration(self, seconds: int) -> str:
        """How long to wait, rounded up: "42 seconds", "1 minute", "15 minutes", "3 hours"."""
        if seconds < 60:
            return self.plural("time.seconds", max(1, seconds))
        if seconds < 90 * 60:
            return self.plural("time.minutes", -(-seconds // 60))
        return self.plural("time.hours", -(-seconds // 3600))

    def date(self, value: date) -> str:
        months = self._own.get("format.months") or self._fallback["format.months"]
        return self("format.date", year=value.year, month=value.month, day=value.day,
                    month_name=months[value.month - 1])


@cache
def translator(lang: str) -> Translator:
    return Translator(lang)


def from_query(request: Request) -> str | None:
    """The language asked for with ``?lang=``, if it is one we have."""
    asked = request.query_params.get("lang", "").strip().lower()
    return asked if asked in SUPPORTED else None


def from_accept_language(header: str) -> str | None:
    """The supported language the browser prefers most (``zh-CN,zh;q=0.9,en;q=0.8`` -> ``zh``).

    Any Chinese tag maps to our Simplified Chinese; ``q=0`` means "not this one".
    """
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in SUPPORTED and q > 0:
            ranked.append((-q, position, primary))
    return min(ranked)[2] if ranked else None


def negotiate(request: Request) -> str:
    cookie = request.cookies.get(COOKIE, "")
    return (
        from_query(request)
        or (cookie if cookie in SUPPORTED else None)
        or from_accept_language(request.headers.get("accept-language", ""))
        or DEFAULT
    )


def for_request(request: Request) -> Translator:
    """The translator for the language this request asked for (query, cookie, Accept-Language)."""
    return translator(negotiate(request))
