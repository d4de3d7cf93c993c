"""What the linkage steps share: the platform they run on and the error for a file that cannot be linked."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy.orm import Session

from ...config import Settings
from ...db import Database
from ...kit.context import Actor, Ctx, Vault


class LinkInputError(Exception):
    """The file as a whole cannot be linked (unreadable, no ``mrn`` column). ``code`` is stable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class LinkPlatform(Protocol):
    """What a linkage job needs of the running platform (``ehc.platform.Platform`` is one)."""

    db: Database
    vault: Vault
    settings: Settings

    def ctx(self, session: Session, actor: Actor) -> Ctx: ...


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a while: steps that build a million small objects that
    are not garbage (rows read, pairs seen) would otherwise have it walk them again and again."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
