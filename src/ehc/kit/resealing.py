"""Re-sealing: move every sealed value onto the active sealing key, in the background, resumably.

After ``ehc keys rotate sealing`` new values are sealed under the new key while old ones still open
under theirs. When the old key may have leaked, every value sealed under it must be sealed again under
the new one before the old key is withdrawn. Each domain declares its sealed columns with the context
each value is bound to (:class:`SealedColumn`; ``wiring.py`` registers them), and :func:`reseal` walks
them:

* a batch of rows per transaction, in primary-key order, so a job stopped at any point (``kill -9``
  included) has lost nothing and a new run goes on with the rows still under an old key;
* each value is replaced only if it is still the one read (compare-and-set), so a value the
  platform rewrote meanwhile is never overwritten with an older one;
* the platform keeps serving meanwhile: a value opens under whichever key sealed it.

``tests/test_key_compromise.py`` checks that every ``*_sealed`` column of the schema is declared here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Engine, func, select, update
from sqlalchemy.engine import Row

from .context import Vault

Progress = Callable[["ColumnProgress"], None]


@dataclass(frozen=True)
class SealedColumn:
    """A column holding sealed values, and how to rebuild the context a row's value is bound to."""

    column: Column[Any]
    context: Callable[[Row[Any]], str]  # from the row (every column of its table)

    @property
    def name(self) -> str:
        return f"{self.column.table.name}.{self.column.name}"


@dataclass
class ColumnProgress:
    column: str
    total: int  # values under another key than the active one when the column's turn came
    done: int = 0


_COLUMNS: dict[str, SealedColumn] = {}


def register(columns: Iterable[SealedColumn]) -> None:
    for sealed in columns:
        _COLUMNS[sealed.name] = sealed


def registered() -> list[SealedColumn]:
    return list(_COLUMNS.values())


def _not_under(column: Column[Any], key_id: str):  # noqa: ANN202
    return column.is_not(None) & ~column.startswith(f"{key_id}.", autoescape=True)


def _under(column: Column[Any], key_id: str):  # noqa: ANN202
    return column.startswith(f"{key_id}.", autoescape=True)


def count_under(engine: Engine, key_id: str) -> dict[str, int]:
    """How many values each sealed column still holds under ``key_id``."""
    with engine.connect() as conn:
        return {s.name: conn.scalar(select(func.count()).where(_under(s.column, key_id))) or 0
                for s in _COLUMNS.values()}


def reseal(engine: Engine, vault: Vault, *, batch_size: int = 500, on_batch: Progress | None = None,
           limit_batches: int | None = None) -> list[ColumnProgress]:
    """Seal again under the active key every value sealed under another; returns what was done.

    ``limit_batches`` stops after that many batches (a test's interruption); a later run goes on.
    """
    active = vault.keys.active("sealing").id
    done: list[ColumnProgress] = []
    batches = 0
    for sealed in _COLUMNS.values():
        table, column = sealed.column.table, sealed.column
        (key,) = table.primary_key.columns
        with engine.connect() as conn:
            progress = ColumnProgress(sealed.name, conn.scalar(select(func.count()).where(_not_under(column, active))) or 0)
        done.append(progress)
        after = None
        while True:
            if limit_batches is not None and batches >= limit_batches:
                return done
            query = select(table).where(_not_under(column, active)).order_by(key).limit(batch_size)
            if after is not None:
                query = query.where(key > after)
            with engine.begin() as conn:
                rows = conn.execute(query).all()
                for row in rows:
                    old = row._mapping[column]
                    context = sealed.context(row)
                    new = vault.seal(vault.open(old, context), context)
                    conn.execute(update(table).where(key == row._mapping[key], column == old).values({column.name: new}))
            batches += 1
            if not rows:
                break
            after = rows[-1]._mapping[key]
            progress.done += len(rows)
            if on_batch is not None:
                on_batch(progress)
    return done
