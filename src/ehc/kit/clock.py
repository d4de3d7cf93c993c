"""The platform's idea of now, in one place so tests and replays can move it."""

from __future__ import annotations

from datetime import date, datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def today() -> date:
    # Residents' ages and birth dates are judged on the China Standard Time calendar day.
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai")).date()
