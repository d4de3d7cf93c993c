"""``ehc serve`` and ``ehc migrate``: serving the API and pages, bringing the schema up to date."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import get_settings
from .common import console


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only; SQLite uses one)")] = 1,
) -> None:
    """Serve the API and the pages."""
    import uvicorn  # only serving needs the server

    settings = get_settings()
    if settings.is_sqlite:
        workers = 1
    console.print(f"Serving on http://{host}:{port}  (API docs at /docs; database {settings.database_url.split('@')[-1]})")
    uvicorn.run("ehc.app:app_factory", factory=True, host=host, port=port, workers=workers, log_level="warning")


def migrate() -> None:
    """Bring the database schema up to date."""
    from ..migrate import upgrade  # heavy: Alembic takes about a second to import; only this command needs it

    upgrade(get_settings().database_url)
    console.print("database schema is up to date")
