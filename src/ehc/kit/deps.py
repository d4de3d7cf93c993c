"""FastAPI dependencies every router shares: the platform and a unit-of-work session."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from ..platform import Platform


T = TypeVar("T")
# The unit of work of the request being served (set by the ``DbSession`` dependency, for ``one_hop``).
_request_session: ContextVar[Session | None] = ContextVar("ehc_request_session", default=None)


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
    current = _request_session.set(session)  # for a ``one_hop`` endpoint, in this request's task
    try:
        yield session
    except BaseException:
        if session.in_transaction():
            await run_in_threadpool(_rollback_and_close, session)
        else:
            session.close()
        raise
    finally:
        _request_session.reset(current)
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        await run_in_threadpool(_commit_and_close, session)
    else:
        session.close()


def _finish(session: Session) -> None:
    """Commit the unit of work if it began one (rolled back on any error), leaving the session open."""
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise


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


def one_hop(endpoint: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """A sync endpoint that runs, with the commit of the request's unit of work, in one trip to the
    thread pool; its answer is then checked and serialised on the event loop.

    FastAPI runs a sync endpoint in a worker thread, then the check of its answer against the response
    model in another, and the session's commit in a third: each trip is a wake-up of a thread and a
    hand-over of the GIL, a fair share of a short request's CPU. For endpoints on a hot path whose
    answer is a response model built in the endpoint (nothing left to load from the database while it
    is serialised). The commit happens before the answer is made, as with ``DbSession`` alone; an error
    in it is the endpoint's error (rolled back, answered as a problem)."""

    @functools.wraps(endpoint)
    async def run(*args: object, **kwargs: object) -> T:
        session = _request_session.get()

        def work() -> T:
            answer = endpoint(*args, **kwargs)
            if session is not None:
                _finish(session)
            return answer

        return await run_in_threadpool(work)

    return run


DbSession = Annotated[Session, Depends(_session, scope="function")]
PlatformDep = Annotated["Platform", Depends(get_platform)]
