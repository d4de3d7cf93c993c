"""What the two sandbox services share: the key, signed answers, the store, the fault switchboard and
the application shell (error handlers, ``GET /key``, the ``/admin/faults`` routes).

- Every answer a party would sign (results and errors) is JSON bytes with ``X-Signature``: base64 of
  the SM2 DER signature over exactly those bytes, by the key kept in the data directory.
- The store is one SQLite file, WAL journal, ``synchronous=FULL``; writes are committed before the
  answer leaves, so a ``kill -9`` loses nothing that was acknowledged. One connection, one lock: the
  sync endpoints run in a thread pool, and a sandbox needs no write concurrency.
- Faults are queued per operation in memory (a restart clears them); ``run`` applies them around an
  operation's effect.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..crypto import SM2PrivateKey, sm3

CHINA = timezone(timedelta(hours=8), "CST")  # China Standard Time: UTC+8 all year, no daylight saving

FAULTS = ("timeout", "error", "error_after_effect", "late", "callback_twice", "callback_late")
CALLBACK_FAULTS = ("callback_twice", "callback_late")


# --- time -------------------------------------------------------------------------------------------

def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, to the second: how every answer and statement writes a moment."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def china_day(moment: datetime) -> date:
    return moment.astimezone(CHINA).date()


def parse_day(text: str) -> date:
    """A statement's day, ``YYYY-MM-DD`` exactly (422 ``invalid`` otherwise)."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise SandboxError(422, "invalid", "the day is YYYY-MM-DD") from None


# --- errors and signed answers ----------------------------------------------------------------------

class SandboxError(Exception):
    """A refusal: ``{"code": ..., "message": ...}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def body_bytes(payload: Any) -> bytes:
    """The one JSON encoding of an answer (compact, UTF-8): what is signed, stored and replayed."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def fingerprint(payload: Any) -> str:
    """SM3 of a canonical JSON of a request's substance: the same id must come with the same request."""
    return sm3(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hex()


class Signer:
    def __init__(self, key: SM2PrivateKey) -> None:
        self.key = key

    def signature(self, body: bytes) -> str:
        return base64.b64encode(self.key.sign(body)).decode()

    def response(self, body: bytes, status: int = 200, media_type: str = "application/json") -> Response:
        return Response(body, status_code=status, media_type=media_type,
                        headers={"X-Signature": self.signature(body)})

    def json(self, payload: Any, status: int = 200) -> Response:
        return self.response(body_bytes(payload), status)

    def error(self, status: int, code: str, message: str) -> Response:
        return self.json({"code": code, "message": message}, status)


def load_or_create_key(data_dir: Path) -> SM2PrivateKey:
    """The service's SM2 key pair: ``private.pem`` (mode 0600) and ``public.pem``, made on first start."""
    private, public = data_dir / "private.pem", data_dir / "public.pem"
    if private.exists():
        key = SM2PrivateKey.from_pem(private.read_bytes())
    else:
        key = SM2PrivateKey.generate()
        tmp = data_dir / f".private.pem.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.to_pem())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, private)
    pem = key.public_key.to_pem()
    if not public.exists() or public.read_bytes() != pem:
        public.write_bytes(pem)
    return key


# --- the store --------------------------------------------------------------------------------------

class Store:
    """One SQLite file: WAL, ``synchronous=FULL``, one connection behind one lock."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        # isolation_level=None: no implicit transactions; ``write`` opens and commits its own.
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self.write() as conn:
            for statement in _statements(schema):
                conn.execute(statement)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed (to disk: synchronous=FULL) when the block ends without error."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self.conn

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _statements(schema: str) -> list[str]:
    """The schema's statements: plain DDL, ``--`` comments dropped, split on ``;`` (``executescript``
    would commit the open transaction)."""
    text = "\n".join(line.split("--", 1)[0] for line in schema.splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


def new_ref(prefix: str, moment: datetime) -> str:
    """A party's own reference: prefix, China date, 10 random digits (e.g. ``YB20261203...``)."""
    return f"{prefix}{china_day(moment):%Y%m%d}{secrets.randbelow(10**10):010d}"


# --- faults -----------------------------------------------------------------------------------------

@dataclass
class Fault:
    operation: str
    fault: str
    remaining: int
    delay: float


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: str
    fault: str
    times: int = Field(1, ge=1, le=1000)
    delay: float = Field(2.0, ge=0, le=600)


class Switchboard:
    """Faults queued per operation, first in first out; each serves ``times`` calls then goes."""

    def __init__(self, operations: tuple[str, ...], callback_operations: tuple[str, ...] = ()) -> None:
        self.operations = operations
        self.callback_operations = callback_operations
        self._queues: dict[str, deque[Fault]] = {op: deque() for op in operations}
        self._lock = threading.Lock()

    def arm(self, request: FaultRequest) -> Fault:
        if request.operation not in self.operations:
            raise SandboxError(422, "invalid", f"operation must be one of {', '.join(self.operations)}")
        if request.fault not in FAULTS:
            raise SandboxError(422, "invalid", f"fault must be one of {', '.join(FAULTS)}")
        if request.fault in CALLBACK_FAULTS and request.operation not in self.callback_operations:
            raise SandboxError(422, "invalid", f"{request.fault} applies only to {', '.join(self.callback_operations)}")
        fault = Fault(request.operation, request.fault, request.times, request.delay)
        with self._lock:
            self._queues[request.operation].append(fault)
        return fault

    def take(self, operation: str) -> Fault | None:
        with self._lock:
            queue = self._queues[operation]
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return Fault(fault.operation, fault.fault, 1, fault.delay)

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"operation": f.operation, "fault": f.fault, "remaining": f.remaining, "delay": f.delay}
                    for queue in self._queues.values() for f in queue]


def run(signer: Signer, fault: Fault | None, effect: Callable[[], Response]) -> Response:
    """Apply ``fault`` (already taken for this call) around ``effect``, which commits and answers.

    ``timeout`` and ``error`` prevent the effect; ``error_after_effect`` and ``late`` let it commit,
    then answer 500 or answer late. The callback faults are the effect's own business (the bank).
    """
    if fault is not None and fault.fault == "timeout":
        time.sleep(fault.delay)
        return signer.error(504, "timeout", "sandbox fault: timeout (nothing was done)")
    if fault is not None and fault.fault == "error":
        return signer.error(500, "internal_error", "sandbox fault: error (nothing was done)")
    response = effect()
    if fault is not None and fault.fault == "error_after_effect":
        return signer.error(500, "internal_error", "sandbox fault: error after the effect")
    if fault is not None and fault.fault == "late":
        time.sleep(fault.delay)
    return response


# --- callbacks --------------------------------------------------------------------------------------

def send_callback(signer: Signer, url: str, body: bytes, *, fault: Fault | None = None) -> None:
    """POST ``body`` (signed) to ``url`` in a background thread: once, twice, or late, per ``fault``.

    A failed delivery is tried once more a second later, then given up: a callback is a courtesy, the
    caller's query is the truth.
    """
    times = 2 if fault is not None and fault.fault == "callback_twice" else 1
    delay = fault.delay if fault is not None and fault.fault == "callback_late" else 0.0

    def deliver() -> None:
        if delay:
            time.sleep(delay)
        with httpx.Client(timeout=5.0) as client:
            for _ in range(times):
                for attempt in range(2):
                    try:
                        answer = client.post(url, content=body, headers={
                            "Content-Type": "application/json", "X-Signature": signer.signature(body)})
                        if answer.status_code < 500:
                            break
                    except httpx.HTTPError:
                        pass
                    if attempt == 0:
                        time.sleep(1.0)

    threading.Thread(target=deliver, name="sandbox-callback", daemon=True).start()


# --- the application shell --------------------------------------------------------------------------

def base_app(title: str, description: str, signer: Signer, faults: Switchboard) -> FastAPI:
    """A FastAPI app with signed error answers, ``GET /key`` and the ``/admin/faults`` routes."""
    app = FastAPI(title=title, description=description, version="1")

    @app.exception_handler(SandboxError)
    def refused(request: Request, exc: SandboxError) -> Response:
        return signer.error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return signer.error(422, "invalid", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return signer.error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    def crashed(request: Request, exc: Exception) -> Response:
        return signer.error(500, "internal_error", f"{type(exc).__name__}")

    @app.get("/key", tags=["key"])
    def key() -> Response:
        """The public key that signs every answer and callback."""
        return signer.json({"public_key_pem": signer.key.public_key.to_pem().decode()})

    @app.post("/admin/faults", tags=["admin"])
    def arm_fault(request: FaultRequest) -> JSONResponse:
        """Queue a fault for the next ``times`` calls of ``operation`` (sandbox only, unsigned)."""
        fault = faults.arm(request)
        return JSONResponse({"operation": fault.operation, "fault": fault.fault, "remaining": fault.remaining,
                             "delay": fault.delay})

    @app.get("/admin/faults", tags=["admin"])
    def list_faults() -> JSONResponse:
        return JSONResponse({"faults": faults.listing()})

    @app.delete("/admin/faults", tags=["admin"])
    def clear_faults() -> JSONResponse:
        faults.clear()
        return JSONResponse({"faults": []})

    return app


def prepare(data_dir: Path) -> Path:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir
