"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and go back.

A model changed without a migration (or a migration written by hand that drifts from its model)
would otherwise show up only in production, where the schema comes from the migrations alone.
"""

from __future__ import annotations

import secrets
import warnings

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import _drop_pg_database, _pg_database
from sqlalchemy import create_engine

from ehc.migrate import alembic_config, comparison_options, upgrade
from ehc.models import metadata


def _differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection, warnings.catch_warnings():
            # SQLite cannot reflect expression indexes (the cards' id-prefix index); alembic says so.
            warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression")
            warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
            context = MigrationContext.configure(connection, opts=comparison_options(connection))
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_models_schema(database_url):
    assert _differences(database_url) == []


def test_the_last_migration_goes_down_and_up_again(database_url, tmp_path):
    # On a database of its own: the session's shared one stays at head for the other tests.
    name = f"ehc_updown_{secrets.token_hex(3)}"
    url = f"sqlite:///{tmp_path / 'updown.sqlite3'}" if database_url.startswith("sqlite") else _pg_database(name)
    try:
        upgrade(url)
        command.downgrade(alembic_config(url), "-1")
        upgrade(url)
        assert _differences(url) == []
    finally:
        if not url.startswith("sqlite"):
            _drop_pg_database(name)
