"""What the linkage steps share: the platform they run on, the error for a file that cannot be linked,
and their worker processes."""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy.orm import Session

from ...config import Settings
from ...db import Database
from ...kit.context import Actor, Ctx, Vault
from ..matching import places
from ..matching.matcher import default_model


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


def default_workers(n: int) -> int:
    """Worker processes for unsealing/cleaning ``n`` rows: none for small jobs (start-up costs more)."""
    return 0 if n < 20_000 else max(os.cpu_count() or 1, 1)


def worker_pool(workers: int, *, initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """Worker processes for the linkage steps, spawned: no copy of the parent's database connections.
    ``initializer`` runs once in each (the index export's opens the key store there)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer, initargs=initargs)


def comparing_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that compare rows by the matcher's rules (grading, clustering): each starts
    loading the model and the gazetteer at once, while the caller is still cutting up the work."""
    pool = worker_pool(workers)
    for _ in range(workers):
        pool.submit(_ready_to_compare)
    return pool


def _ready_to_compare() -> None:
    default_model()
    places.region_of("四川省成都市锦江区")
