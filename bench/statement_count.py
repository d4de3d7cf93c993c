"""The SQL statements and commits an engine runs while counting is on: the profiles (``profile_*.py``)
count the work they measure, not their set-up."""

from __future__ import annotations

import os
import statistics
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

    def report(self, what: str, count: int, walls: list[float], cpu: float) -> None:
        """Print the measured pass: ``what`` (e.g. "http: 200 lookups"), the median and p90 of the
        ``count`` operations' wall times, this process's CPU a operation (``cpu``: in all), and the
        statements and commits counted, each statement with how often an operation ran it."""
        print(f"{what}: median {1000 * statistics.median(walls):.2f} ms wall, {1000 * cpu / count:.2f} ms CPU of this "
              f"process (not profiled), p90 {1000 * sorted(walls)[int(0.9 * count)]:.2f} ms; "
              f"{sum(self.statements.values()) / count:.1f} SQL statements and {self.commits / count:.1f} commits "
              f"each; 1-min load average {os.getloadavg()[0]:.1f}")
        for statement, n in self.statements.most_common():
            print(f"  {n / count:4.1f} x {statement}")
