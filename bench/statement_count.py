"""The SQL statements and commits an engine runs while counting is on: the profiles (``profile_*.py``)
count the work they measure, not their set-up."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import event
from sqlalchemy.engine import Engine


class StatementCount:
    def __init__(self, engine: Engine, width: int = 100) -> None:
        self.statements: Counter[str] = Counter()  # statement (whitespace folded, cut at ``width``) -> times
        self.commits = 0
        self.on = False
        self._width = width
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, ARG002
        if self.on:
            self.statements[" ".join(statement.split())[: self._width]] += 1

    def _commit(self, conn) -> None:  # noqa: ANN001, ARG002
        self.commits += self.on
