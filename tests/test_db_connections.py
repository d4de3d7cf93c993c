"""Pooled PostgreSQL connections: checked with a round trip only after sitting idle (not at every
request), replaced without the caller noticing when they died while idle, and a connection that dies
between two uses close together fails its one request with 503 ``database_unavailable``, not a 500,
while the next request reconnects."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from ehc import db as db_module
from ehc.platform import Platform

from conftest import PG_ADMIN_URL


@pytest.fixture
def pg_platform(platform: Platform) -> Platform:
    if not platform.db.url.startswith("postgresql"):
        pytest.skip("the pool's pings are PostgreSQL's (SQLite has no server to lose)")
    return platform


def _kill_other_connections(platform: Platform) -> int:
    """Terminate every server process of the platform's database, as a restart or a failover would."""
    name = platform.db.engine.url.database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return len(connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}).all())
    finally:
        admin.dispose()


def _pings(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    dialect = platform.db.engine.dialect
    real = dialect.do_ping

    def counted(dbapi_connection):  # noqa: ANN001, ANN202
        calls.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return calls


def test_a_connection_used_moments_ago_is_not_pinged(pg_platform: Platform, client, clerk, monkeypatch) -> None:  # noqa: ANN001
    pings = _pings(pg_platform, monkeypatch)
    for _ in range(5):
        assert client.get("/api/v1/institutions", headers=clerk).status_code == 200
    assert pings == []


def test_an_idle_connection_that_died_is_replaced_unnoticed(pg_platform: Platform, client, clerk, monkeypatch) -> None:  # noqa: ANN001
    assert client.get("/api/v1/institutions", headers=clerk).status_code == 200
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    pings = _pings(pg_platform, monkeypatch)
    assert _kill_other_connections(pg_platform) >= 1
    answer = client.get("/api/v1/institutions", headers=clerk)
    assert answer.status_code == 200, answer.text
    assert pings  # the dead connection was found by its ping, and a new one made


def test_a_connection_lost_between_close_uses_is_a_503_then_reconnects(pg_platform: Platform, client, clerk) -> None:  # noqa: ANN001
    assert client.get("/api/v1/institutions", headers=clerk).status_code == 200
    assert _kill_other_connections(pg_platform) >= 1
    answer = client.get("/api/v1/institutions", headers=clerk)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "database_unavailable" and answer.headers["Retry-After"] == "1"
    assert client.get("/api/v1/institutions", headers=clerk).status_code == 200  # the pool reconnected
