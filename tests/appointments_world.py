"""Helpers the appointment tests share: a department with a scheduler and a clerk, sessions, holders."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from factories import card_holder, make_staff, person

from ehc.institutions import service as institutions
from ehc.kit.clock import CHINA, china_today
from ehc.kit.context import Actor

SHAPE = {"start": "08:00", "end": "09:00", "period_minutes": 15, "category": "expert", "fee_fen": 5000,
         "quota_online": 2, "quota_window": 1, "quota_kiosk": 0, "quota_referral": 0,
         "referral_release_hours": 24}


def add_department(platform, institution: str, code: str = "0300") -> None:  # noqa: ANN001
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        institutions.add_department(ctx, institutions.get_institution(ctx, institution), code=code)


def desk(platform, client, institution: str) -> dict[str, dict[str, str]]:  # noqa: ANN001
    """A department 0300 and the staff around it: scheduler (admin), clerk, nurse, family doctor."""
    add_department(platform, institution)
    return {role: make_staff(platform, client, role, institution)
            for role in ("institution_admin", "window_clerk", "nurse", "family_doctor")}


def publish(client, admin: dict, *, day: date | None = None, **shape) -> dict:  # noqa: ANN001
    body = {**SHAPE, **shape, "department_code": shape.pop("department_code", "0300"),
            "day": (day or china_today() + timedelta(days=1)).isoformat()}
    made = client.post("/api/v1/appointments/sessions", json=body, headers=admin)
    assert made.status_code == 201, made.text
    return client.get(f"/api/v1/appointments/sessions/{made.json()['id']}", headers=admin).json()


def resident(client, platform, n: int, *, phone: str | None = None) -> tuple[str, dict[str, str]]:  # noqa: ANN001
    """A resident with a card, signed in: (ehc_id, headers)."""
    name = "测试" + "".join("零一二三四五六七八九"[int(d)] for d in f"{n:03d}")
    return card_holder(client, platform, person(name, date(1980, 1, 1) + timedelta(days=n), 100 + n,
                                                n % 2 == 0, phone=phone or f"139{n:08d}"))


def later_today(minutes: int = 60) -> tuple[date, str, str] | None:
    """A session window starting at a quarter hour at least five minutes ahead in China today, or None
    near midnight (the next quarter hour may be seconds away: its first period would start before the
    test books it)."""
    now = datetime.now(CHINA)
    soon = now + timedelta(minutes=5)
    start = (soon + timedelta(minutes=15 - soon.minute % 15)).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=minutes)
    if end.date() != now.date():
        return None
    return now.date(), start.strftime("%H:%M"), end.strftime("%H:%M")
