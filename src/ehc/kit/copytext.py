"""PostgreSQL ``COPY ... FROM STDIN`` text format: how the bulk writers spell one row.

One field: ``\\N`` for NULL; a datetime in ISO 8601; backslash, tab, newline and carriage return
escaped. One row: its fields joined by tabs, ended by a newline.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


def copy_value(value: object) -> str:
    """One field in COPY text format."""
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def copy_line(values: Iterable[object]) -> str:
    """One row in COPY text format, newline included."""
    return "\t".join(copy_value(v) for v in values) + "\n"
