"""Test fixtures. Every database test runs twice: on SQLite and on PostgreSQL.

PostgreSQL is required, not optional: set EHC_TEST_PG_URL to point elsewhere than the local server
(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres); `.ci/run` starts it.

The fixtures every test module shares live here (the platform and its client, the test institution, a
window clerk, a hospital system ``his``, a signed-in card ``holder``, live servers, Chromium); they are
built from the plain functions of ``factories.py``, which a test calls directly when it needs another
one. A test that takes the ``chromium`` fixture is marked ``browser`` automatically.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import ARTIFACTS, HOLDER_PERSON, card_holder, hospital_system, live, make_institution, make_staff
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from ehc.app import create_app
from ehc.client import SM2Auth
from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit.context import Actor, Vault
from ehc.migrate import upgrade
from ehc.models import metadata
from ehc.platform import Platform

PG_ADMIN_URL = os.environ.get("EHC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


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
def own_keys(settings: Settings, tmp_path: Path) -> Iterator[Platform]:
    """The same database on a copy of the session's key store, so rotating touches no other test."""
    path = tmp_path / "own-keys"
    shutil.copytree(settings.keys_dir, path)
    keys = KeyStore(path)
    own = Platform(settings=Settings(data_dir=tmp_path, database_url=settings.database_url, keys_dir=path),
                   db=Database(settings.database_url), keys=keys, vault=Vault(keys))
    yield own
    own.db.dispose()


@pytest.fixture
def client(platform: Platform):
    with TestClient(create_app(platform), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def institution(platform: Platform) -> str:
    return make_institution(platform, "inst-test-01", uscc="12510000MB1234567X", name="Test People's Hospital",
                            kind="hospital", region_code="510104", level="3A")


@pytest.fixture
def clerk(platform: Platform, client, institution: str) -> dict[str, str]:  # noqa: ANN001
    """Authorization headers of a window clerk at the test hospital."""
    return make_staff(platform, client, "window_clerk", institution)


@pytest.fixture
def his(platform: Platform, institution: str) -> SM2Auth:
    """A hospital system of the test institution, signing its calls."""
    return hospital_system(platform, institution)


@pytest.fixture
def holder_person() -> dict:
    """Who the ``holder`` fixture is; a module overrides it to make its own holder."""
    return HOLDER_PERSON


@pytest.fixture
def holder(client, platform: Platform, holder_person: dict) -> tuple[str, dict[str, str]]:  # noqa: ANN001
    """A resident who applied on the website, signed in: (their ehc_id, their headers)."""
    return card_holder(client, platform, holder_person)


@pytest.fixture
def live_url(platform: Platform) -> Iterator[str]:
    """The base URL of the app on this test's platform, served by a real uvicorn."""
    with live(create_app(platform)) as url:
        yield url


# -- real browsers ------------------------------------------------------------------------------------
# A browser test runs once rather than once per database: the live server gets its own migrated SQLite
# platform (the pages sit above the services, whose behaviour on PostgreSQL the API and page tests
# already cover).

CHROMIUM = "/usr/bin/chromium"
# Playwright cannot download its own browsers here; these flags keep Debian's quiet and sandbox-free.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def sqlite_platform(keys_dir: Path, tmp_path: Path) -> Iterator[Platform]:
    url = f"sqlite:///{tmp_path / 'browser.sqlite3'}"
    upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, keys_dir=keys_dir)
    keys = KeyStore(settings.keys_dir)
    db = Database(url)
    yield Platform(settings=settings, db=db, keys=keys, vault=Vault(keys))
    db.dispose()


@pytest.fixture
def live_server(sqlite_platform: Platform) -> Iterator[str]:
    """The base URL of the app on ``sqlite_platform``, served by a real uvicorn."""
    with live(create_app(sqlite_platform)) as url:
        yield url


@pytest.fixture
def chromium():  # noqa: ANN201
    """A headless Chromium (Playwright's sync API), closed after the test."""
    from playwright.sync_api import sync_playwright  # heavy: only the browser tests need Playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that drives Chromium carries the ``browser`` marker, so ``-m "not browser"`` leaves
    them all out; nobody has to remember to add it."""
    for item in items:
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
