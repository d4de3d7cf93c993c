"""Failures that must count even though the request fails: a wrong password, code or PIN.

The request's transaction is rolled back when it ends in an error, yet a wrong try has to be
remembered, or the limits on tries (lock-outs, burnt codes) would never be reached. So the count is
made to last before the error is raised, while the request still holds the lock it took to read the
count (the subject's advisory lock or row lock on PostgreSQL, the database's write lock on SQLite):
the next try reads the new count, whatever happens to the request after this point. Writing the
count in a transaction of its own instead would wait for the request's own locks (SQLite has one
writer at a time), and writing it after the rollback would let a concurrent try read the old count.

Services that count failures call :func:`keep_and_raise` right after counting; whatever the
request wrote before that point is committed with the count.
"""

from __future__ import annotations

from typing import NoReturn

from sqlalchemy.orm import Session

from .errors import Problem


def keep_and_raise(session: Session, problem: Problem) -> NoReturn:
    """Make what was just counted last (commit the request's work so far), then fail with ``problem``."""
    session.commit()
    raise problem from None  # the problem says it all; nothing it was raised while handling matters
