"""Appointment limits under races, with many concurrent clients of a live server, on SQLite and
PostgreSQL: capacity, one booking per person and session, retries with one Idempotency-Key, and a
waitlist promotion racing new bookings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx
import pytest
from appointments_world import desk, publish, resident
from argon2 import PasswordHasher
from factories import person
from sqlalchemy import func, select

from ehc.accounts import service as accounts
from ehc.kit.ratelimit import RateLimiter
from ehc.appointments.models import Booking, Period

CLIENTS = 30  # per race on SQLite (one writer at a time); PostgreSQL takes the 200 on the last 10
PLACES = 5


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def _live(platform, period_id: int) -> int:  # noqa: ANN001
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(Booking).where(
            Booking.period_id == period_id, Booking.status.in_(("held", "booked", "arrived"))))


def _race(calls) -> list[httpx.Response]:  # noqa: ANN001
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_many_clients_racing_for_the_last_places(client, platform, institution, live_url):
    postgres = platform.db.engine.dialect.name == "postgresql"
    clients, places = (200, 10) if postgres else (CLIENTS, PLACES)
    platform.limiters["identity"] = RateLimiter(0)  # one clerk registers every racer first; not what is tested
    staff = desk(platform, client, institution)
    session = publish(client, staff["institution_admin"], quota_online=0, quota_window=places)
    period = session["periods"][0]["id"]
    cards = [made.json()["ehc_id"] for made in (
        client.post("/api/v1/cards", json=person("竞" + "".join("零一二三四五六七八九"[int(d)] for d in f"{n:03d}"), date(1970, 1, 1) + timedelta(days=n), n % 1000, n % 2 == 0,
                                                  phone=f"136{n:08d}"), headers=staff["window_clerk"])
        for n in range(clients))]  # at the window: the public website's per-address limit stays out of it
    clerk = staff["window_clerk"]

    def book(ehc_id: str):  # noqa: ANN202
        return lambda: httpx.post(f"{live_url}/api/v1/appointments/bookings", headers=clerk, timeout=120,
                                  json={"period_id": period, "ehc_id": ehc_id})

    answers = _race([book(c) for c in cards])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * places + [409] * (clients - places), [a.text for a in answers if a.status_code >= 500]
    refused = [a.json() for a in answers if a.status_code == 409]
    assert {r["code"] for r in refused} == {"period_full"}
    assert all(r["next_free"] and r["next_free"][0]["period_id"] != period for r in refused)
    assert _live(platform, period) == places
    with platform.db.session() as db:
        assert db.get(Period, period).used_window == places


def test_one_person_racing_for_many_periods_of_a_session_gets_one(client, platform, institution, live_url):
    staff = desk(platform, client, institution)
    session = publish(client, staff["institution_admin"], start="08:00", end="10:30")  # 10 periods
    _, me = resident(client, platform, 300)
    periods = [p["id"] for p in session["periods"]]

    def hold(period_id: int):  # noqa: ANN202
        return lambda: httpx.post(f"{live_url}/api/v1/me/appointments", headers=me, timeout=120,
                                  json={"period_id": period_id})

    answers = _race([hold(p) for p in periods])
    assert sorted(a.status_code for a in answers) == [201] + [409] * (len(periods) - 1), [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} <= {"already_booked", "department_day_limit"}
    assert sum(_live(platform, p) for p in periods) == 1


def test_retries_with_one_idempotency_key_make_one_booking(client, platform, institution, live_url):
    staff = desk(platform, client, institution)
    session = publish(client, staff["institution_admin"])
    _, me = resident(client, platform, 301)
    period = session["periods"][0]["id"]

    def retry():  # noqa: ANN202
        return httpx.post(f"{live_url}/api/v1/me/appointments", headers={**me, "Idempotency-Key": "storm-1"},
                          json={"period_id": period}, timeout=120)

    answers = _race([retry] * 12)
    assert [a.status_code for a in answers] == [201] * 12, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["reference"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 11
    assert _live(platform, period) == 1


def test_a_waitlist_promotion_racing_new_bookings_keeps_the_capacity(client, platform, institution, live_url):
    """A cancellation gives the place to the first in line in the same transaction: the bookers racing
    it get 409 ``period_full``, and the period never holds more than its capacity."""
    staff = desk(platform, client, institution)
    session = publish(client, staff["institution_admin"], quota_online=1, quota_window=0)
    period = session["periods"][0]["id"]
    _, first = resident(client, platform, 400)
    _, waiting = resident(client, platform, 401)
    racers = [resident(client, platform, 402 + n)[1] for n in range(8)]
    ref = client.post("/api/v1/me/appointments", json={"period_id": period}, headers=first).json()["reference"]
    assert client.post("/api/v1/me/waitlist", json={"period_id": period}, headers=waiting).status_code == 201

    def cancel():  # noqa: ANN202
        return httpx.post(f"{live_url}/api/v1/me/appointments/{ref}/cancel", json={}, headers=first, timeout=120)

    def hold(headers):  # noqa: ANN001, ANN202
        return lambda: httpx.post(f"{live_url}/api/v1/me/appointments", json={"period_id": period},
                                  headers=headers, timeout=120)

    answers = _race([cancel] + [hold(h) for h in racers])
    assert answers[0].status_code == 200, answers[0].text
    held = [a for a in answers[1:] if a.status_code == 201]
    assert all(a.status_code in (201, 409) for a in answers[1:]), [a.text for a in answers]
    offered = httpx.get(f"{live_url}/api/v1/me/waitlist", headers=waiting).json()[0]
    # Whoever won, exactly one place is taken: a racer who came before the cancellation committed
    # cannot get it (it was not free), one after finds it offered to the first in line.
    assert _live(platform, period) == 1
    assert offered["status"] == "offered" and not held
