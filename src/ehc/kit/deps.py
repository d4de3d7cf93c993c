"""FastAPI dependencies every router shares: the platform and a unit-of-work session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from ..platform import Platform


def get_platform(request: Request) -> "Platform":
    return request.app.state.platform


async def _session(request: Request) -> AsyncIterator[Session]:
    # One transaction per request, committed before the answer leaves ("function" scope), so a
    # client never sees success for something that was not stored.
    #
    # Opened on the event loop (a Session is made without touching the database) and finished in the
    # thread pool only when there is something to finish: a sync dependency would cost two thread
    # hand-offs a request (in, out), and a request that never began a transaction (a cached key, an
    # anonymous call) none at all.
    session = get_platform(request).db.sessions()
    try:
        yield session
    except BaseException:
        if session.in_transaction():
            await run_in_threadpool(_rollback_and_close, session)
        else:
            session.close()
        raise
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        await run_in_threadpool(_commit_and_close, session)
    else:
        session.close()


def _commit_and_close(session: Session) -> None:
    """``Database.session``'s end, in a worker thread: commit (rolled back on any error), then close."""
    try:
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _rollback_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


DbSession = Annotated[Session, Depends(_session, scope="function")]
PlatformDep = Annotated["Platform", Depends(get_platform)]
