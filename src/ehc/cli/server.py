"""``ehc serve`` and ``ehc migrate``: serving the API and pages, bringing the schema up to date."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import get_settings
from .common import console, err


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL and EHC_REDIS_URL; otherwise one)")] = 1,
) -> None:
    """Serve the API and the pages."""
    import uvicorn  # only serving needs the server

    settings = get_settings()
    if settings.is_sqlite:
        workers = 1
    if workers > 1 and not settings.redis_url:
        # Without Redis the rate limits live in each process: N workers would give every caller N times its limit.
        err.print("[red]error[/red] several workers share their rate limits through Redis: set EHC_REDIS_URL "
                  "(docs/operations.md), or serve with one worker")
        raise typer.Exit(2)
    console.print(f"Serving on http://{host}:{port}  (API docs at /docs; database {settings.database_url.split('@')[-1]})")
    uvicorn.run("ehc.app:app_factory", factory=True, host=host, port=port, workers=workers, log_level="warning")


def migrate() -> None:
    """Bring the database schema up to date."""
    from ..migrate import upgrade  # heavy: Alembic takes about a second to import; only this command needs it

    upgrade(get_settings().database_url)
    console.print("database schema is up to date")
