"""FastAPI dependencies every router shares: the platform and a unit-of-work session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from ..platform import Platform


def get_platform(request: Request) -> "Platform":
    return request.app.state.platform


def _session(request: Request) -> Iterator[Session]:
    # One transaction per request, committed before the answer leaves ("function" scope), so a
    # client never sees success for something that was not stored.
    with get_platform(request).db.session() as session:
        yield session


DbSession = Annotated[Session, Depends(_session, scope="function")]
PlatformDep = Annotated["Platform", Depends(get_platform)]
