"""Alembic environment: migrates the database named by the platform's settings."""

from __future__ import annotations

from alembic import context

from ehc.config import get_settings
from ehc.db import make_engine
from ehc.migrate import comparison_options
from ehc.models import metadata

config = context.config


def run_migrations() -> None:
    url = config.attributes.get("database_url") or get_settings().database_url
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        **comparison_options(connection),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
