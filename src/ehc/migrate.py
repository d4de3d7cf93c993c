"""Run Alembic migrations from code (the CLI's ``ehc migrate``, the tests, ``make run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from .kit.partitions import partition_tables

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def comparison_options(connection: Connection) -> dict[str, Any]:
    """How Alembic compares the models with a database (autogenerate, the migration test): with the
    column types, and without the partitions of a partitioned table (``card_uses_2026_12``...), which
    are the parent's storage, not tables of the models. Read on first use: a query before Alembic's
    own transaction would begin one that Alembic then leaves to the caller, uncommitted."""
    partitions: set[str] | None = None

    def include_name(name: str | None, type_: str, _parents: dict) -> bool:
        nonlocal partitions
        if type_ != "table":
            return True
        if partitions is None:
            partitions = partition_tables(connection)
        return name not in partitions

    return {"compare_type": True, "include_name": include_name}
