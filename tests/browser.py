"""Real-browser fixtures: the app served by uvicorn on a free local port, and Debian's Chromium.

Import the fixtures into a test module (``from browser import live_server, chromium``). The live
server gets its own migrated SQLite platform, built like conftest's ``platform`` fixture, so a
browser test runs once rather than once per database: the pages sit above the services, whose
behaviour on PostgreSQL the API and page tests already cover.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit.context import Vault
from ehc.migrate import upgrade
from ehc.platform import Platform

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
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
    """The base URL of the app, served by a real uvicorn in a background thread."""
    import uvicorn

    from ehc.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(sqlite_platform), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = server.force_exit = True  # don't wait for the browser's keep-alive connections
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def chromium():  # noqa: ANN201
    """A headless Chromium (Playwright's sync API), closed after the test."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
