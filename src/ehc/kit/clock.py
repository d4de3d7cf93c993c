"""The platform's idea of now and of China's calendar, in one place so tests and replays can move it.

Every module reads the time through here: ``utcnow()`` for moments (stored in UTC), ``CHINA`` for
the zone residents and staff live in (China Standard Time, UTC+8 all year), ``today()`` /
``china_today()`` for the calendar day there, and ``unix_now()`` for seconds since the epoch.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc


def utcnow() -> datetime:
    return datetime.now(UTC)


def unix_now() -> float:
    """Seconds since the epoch (for signed timestamps and sealed expiries)."""
    return time.time()


def china_today() -> date:
    """Today's date on the China Standard Time calendar."""
    return datetime.now(CHINA).date()


def today() -> date:
    # Residents' ages and birth dates are judged on the China Standard Time calendar day.
    return china_today()


def in_china(moment: datetime) -> datetime:
    """``moment`` (aware) as China Standard Time."""
    return moment.astimezone(CHINA)
