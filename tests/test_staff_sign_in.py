"""Wrong staff passwords slow down their source, not the account; the owner is told; on both DBs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from ehc.accounts import service as accounts
from ehc.kit.clock import utcnow
from ehc.kit.context import Actor
from ehc.kit.errors import Problem

PASSWORD = "correct horse battery"


@pytest.fixture
def username(platform, institution) -> str:  # noqa: ANN001
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username="dr-wang", password=PASSWORD,
                              role="doctor", institution_id=institution)
    return "dr-wang"


def attempt(platform, username: str, password: str, source: str) -> str:  # noqa: ANN001
    """The code of the refusal, or "ok"."""
    try:
        with platform.db.session() as session:
            accounts.sign_in_staff(platform.ctx(session, Actor.anonymous()), username, password, source)
    except Problem as problem:
        return problem.code
    return "ok"


def test_a_guesser_elsewhere_does_not_lock_the_owner_out(platform, username, client, monkeypatch):
    assert [attempt(platform, username, "guess", "203.0.113.9") for _ in range(5)] == ["sign_in_failed"] * 5
    # The guessing source waits a minute now, even with the right password...
    assert attempt(platform, username, PASSWORD, "203.0.113.9") == "sign_in_slowed"
    # ...while the owner at their own workstation signs in, and is told what happened.
    answer = client.post("/api/v1/auth/staff/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    assert answer.json()["failures_before_sign_in"] == 5 and answer.json()["last_failure_at"]
    # The count starts again; the guesser is still waiting, and the wait doubles with each failure.
    later = utcnow() + timedelta(seconds=61)
    monkeypatch.setattr(accounts, "utcnow", lambda: later)
    assert attempt(platform, username, "guess", "203.0.113.9") == "sign_in_failed"
    try:
        with platform.db.session() as session:
            accounts.sign_in_staff(platform.ctx(session, Actor.anonymous()), username, PASSWORD, "203.0.113.9")
    except Problem as problem:
        assert problem.code == "sign_in_slowed" and 110 <= problem.extra["retry_after"] <= 120
    else:
        pytest.fail("the guesser was let in")
    again = client.post("/api/v1/auth/staff/token", json={"username": username, "password": PASSWORD})
    assert again.status_code == 200 and again.json()["failures_before_sign_in"] == 1


def test_the_wrong_password_answer_is_a_429_with_retry_after(client, username):
    for _ in range(5):
        assert client.post("/api/v1/auth/staff/token", json={"username": username, "password": "nope"}).status_code == 401
    slowed = client.post("/api/v1/auth/staff/token", json={"username": username, "password": PASSWORD})
    assert slowed.status_code == 429 and slowed.json()["code"] == "sign_in_slowed"
    assert slowed.headers["content-type"].startswith("application/problem+json")
    assert 55 <= int(slowed.headers["Retry-After"]) <= 60


def test_many_sources_at_once_slow_every_source(platform, username):
    """Twenty wrong passwords from twenty addresses (a spread-out guesser): every source, the owner's
    too, waits half a minute between tries; nobody is locked out for longer."""
    for n in range(accounts.CROWD_FAILURES):
        assert attempt(platform, username, "guess", f"198.51.100.{n}") == "sign_in_failed"
    assert attempt(platform, username, PASSWORD, "192.0.2.1") == "sign_in_slowed"


def test_concurrent_guesses_are_all_counted(platform, username):
    """Twelve wrong passwords at once from one source: all counted, so the source is slowed after."""
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: attempt(platform, username, "guess", "203.0.113.7"), range(12)))
    assert set(codes) <= {"sign_in_failed", "sign_in_slowed"} and codes.count("sign_in_failed") >= accounts.FREE_TRIES
    assert attempt(platform, username, PASSWORD, "203.0.113.7") == "sign_in_slowed"
    with platform.db.session() as session:
        account = accounts.repository.staff_by_username(session, username)
        assert account.failed_attempts == codes.count("sign_in_failed")
