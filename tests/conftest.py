"""Test fixtures. Every database test runs twice: on SQLite and on PostgreSQL.

PostgreSQL is required, not optional: set EHC_TEST_PG_URL to point elsewhere than the local server
(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres); `.ci/run` starts it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit.context import Actor, Vault
from ehc.migrate import upgrade
from ehc.models import metadata
from ehc.platform import Platform

PG_ADMIN_URL = os.environ.get("EHC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "store"
    KeyStore.init(path)
    return path


def _pg_database(name: str) -> str:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of each kind, made once per test session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ehc.sqlite3'}"
        upgrade(url)
        yield url
        return
    name = f"ehc_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = _pg_database(name)
    upgrade(url)
    yield url
    _drop_pg_database(name)


def _empty_tables(db: Database) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def settings(database_url: str, keys_dir: Path, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, keys_dir=keys_dir)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    keys = KeyStore(settings.keys_dir)
    db = Database(settings.database_url)
    _empty_tables(db)
    yield Platform(settings=settings, db=db, keys=keys, vault=Vault(keys))
    db.dispose()


@pytest.fixture
def client(platform: Platform):
    from fastapi.testclient import TestClient

    from ehc.app import create_app

    with TestClient(create_app(platform), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def institution(platform: Platform) -> str:
    from ehc.institutions.models import Institution

    with platform.db.session() as session:
        session.add(Institution(id="inst-test-01", uscc="12510000MB1234567X", name="Test People's Hospital",
                                kind="hospital", region_code="510104", level="3A"))
    return "inst-test-01"


def make_staff(platform: Platform, client, role: str, institution: str | None,  # noqa: ANN001
               region: str | None = None) -> dict[str, str]:
    """Create a staff account directly and sign it in; ``region`` for health-commission roles."""
    from ehc.accounts import service

    username = f"{role}-{secrets.token_hex(3)}"
    with platform.db.session() as session:
        service.create_staff(platform.ctx(session, Actor.system()), username=username,
                             password="correct horse battery", role=role, institution_id=institution,
                             region_code=region)
    answer = client.post("/api/v1/auth/staff/token", json={"username": username, "password": "correct horse battery"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def clerk(platform: Platform, client, institution: str) -> dict[str, str]:  # noqa: ANN001
    """Authorization headers of a window clerk at the test hospital."""
    return make_staff(platform, client, "window_clerk", institution)
