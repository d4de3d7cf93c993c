"""Idempotency keys: a retried request with the same key gets the first answer, not a second effect.

The record is written in the same transaction as the effect, so either both exist or neither does.
It keeps a reference to the result (e.g. a card id), never the response body: answers carry personal
data, and nothing personal is stored in clear. A replay re-reads the result and renders it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Response
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base, UtcDateTime
from . import dialect
from .clock import utcnow
from .context import Ctx
from .errors import Conflict, Invalid

MAX_KEY_LENGTH = 128
T = TypeVar("T")


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    result_ref: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def request_fingerprint(blind: Callable[[str, str], str], payload: Any) -> str:
    """A keyed digest of the request: a plain hash of a body holding an ID number could be
    reversed by trying every ID number, so the blind-index key is used."""
    return blind("idempotency", json.dumps(payload, sort_keys=True, default=str))


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Invalid(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters.",
            code="idempotency_key_invalid",
        )
    return key


def replay(session: Session, scope: str, key: str, fingerprint: str) -> tuple[int, str] | None:
    """The stored answer for this key, or None when the key is new. A key reused for a different
    request is refused rather than silently answering with someone else's result."""
    record = session.scalars(
        select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
    ).first()
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise Conflict(
            "This Idempotency-Key was already used for a different request.",
            code="idempotency_key_reused",
        )
    return record.status_code, record.result_ref


def remember(session: Session, scope: str, key: str, fingerprint: str, status_code: int, result_ref: str) -> None:
    session.add(
        IdempotencyRecord(
            scope=scope,
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            result_ref=result_ref,
        )
    )


def responses(model: type) -> dict[int | str, dict[str, Any]]:
    """What a route run through :func:`run_once` answers besides its 201, for its OpenAPI document:
    200 with the same model when nothing new was made (it existed already)."""
    return {200: {"model": model, "description": "Nothing new was made: the one that exists already"}}


def run_once(ctx: Ctx, key: str | None, route: str, payload: Any, response: Response,
             do: Callable[[], tuple[T, bool]], *, ref: Callable[[T], str], load: Callable[[str], T]) -> tuple[T, bool]:
    """Run ``do`` (which answers ``(result, created)``) once per Idempotency-Key of this caller and
    route: a retry gets the first result back, re-read with ``load`` from the stored ``ref``, with the
    first status code and ``Idempotent-Replayed: true``. Sets 201 (created) or 200 on ``response``;
    answers ``(result, created)``. Without a key ``do`` simply runs."""
    if key is not None:
        check_key(key)
        scope = f"{ctx.actor.kind}:{ctx.actor.id or '-'}:{route}"
        fingerprint = request_fingerprint(ctx.vault.blind, payload)
        # Requests with one key take turns until the first commits: the others then find its record
        # and answer with its result (or 409 for another body), rather than all running and all but
        # one tripping over the record's primary key.
        dialect.serialise(ctx.session, f"idempotency:{scope}:{key}")
        seen = replay(ctx.session, scope, key, fingerprint)
        if seen is not None:
            response.status_code, result_ref = seen
            response.headers["Idempotent-Replayed"] = "true"
            return load(result_ref), response.status_code == 201
    result, created = do()
    response.status_code = 201 if created else 200
    if key is not None:
        remember(ctx.session, scope, key, fingerprint, response.status_code, ref(result))
    return result, created
