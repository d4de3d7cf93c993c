"""HTTP plumbing shared by every router: problem+json answers and request ids.

Kept apart from the services: they raise Problems, this module shapes them for the wire.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import current_client_address, current_request_id
from .errors import Problem

log = logging.getLogger("ehc.http")
PROBLEM_JSON = "application/problem+json"

STATUS_CODES = {  # the problem code of a bare HTTP status
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def safe_local_path(target: str | None, *, within: str = "/", default: str = "/",
                    excluding: tuple[str, ...] = ()) -> str:
    """``target`` if it is a path on this site under ``within`` (and not under ``excluding``), else
    ``default``: a "next page" parameter must never become an open redirect to another site."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and "//" not in target
        and (within == "/" or target == within or target.startswith((within + "/", within + "?")))
        and not target.startswith(excluding or ("\0",))
    ):
        return target
    return default


def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "")


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    headers = {"X-Request-ID": request_id(request)}
    if "retry_after" in problem.extra:  # rate limits and lock-outs say when to come back
        headers["Retry-After"] = str(problem.extra["retry_after"])
    return JSONResponse(
        problem.body(instance=request.url.path, request_id=request_id(request)),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


# -- input the database cannot take: one rule at the edge, for every door --------------------------

NUL_CHARACTER = Problem("Text in this request contains the NUL character (U+0000), which no field may hold.",
                        code="nul_character", status=400, title="Invalid character")
# Request bodies whose text is checked for NUL: JSON (escaped as \u0000) and HTML forms (%00). Other
# bodies (images, files) may hold zero bytes legitimately.
_TEXT_BODIES = {b"application/json": (b"\\u0000", b"\x00"), b"application/fhir+json": (b"\\u0000", b"\x00"),
                b"application/x-www-form-urlencoded": (b"%00", b"\x00")}


class InFlightLimit:
    """At most ``limit`` requests of this process are worked on at once; the others wait their turn in
    the event loop, where waiting costs nothing.

    Without it a burst (200 clients at once) fills the thread pool with requests that each hold or
    wait for a database connection while the thread their next step needs is taken, and the pool of
    connections runs dry: requests time out instead of queueing. The limit stays below the database
    pool (a request may use two connections: its own and the nonce claim's) and the thread pool."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, max(1, limit)
        self._turns: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._turns is None:  # made in the serving loop, on the first request
            self._turns = asyncio.Semaphore(self.limit)
        async with self._turns:
            await self.app(scope, receive, send)


class NulGuardMiddleware:
    """Refuses, with 400 ``nul_character``, any request whose path, query or text body holds a NUL:
    PostgreSQL cannot store one in text, and no name, number or code has one. Checked once here, for
    the API, the pages and the FHIR door alike, before any handler runs.

    The refusal is problem+json, or, under a path prefix a door names in ``answers``, that door's own
    form of a problem (the FHIR door's OperationOutcome)."""

    def __init__(self, app: ASGIApp,
                 answers: Mapping[str, Callable[[Request, Problem], Response]] | None = None) -> None:
        self.app = app
        self.answers = dict(answers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if b"\x00" in unquote_to_bytes(raw_path) or b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            await self._refuse(scope, receive, send)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
        markers = _TEXT_BODIES.get(content_type)
        if markers is None:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if any(marker in body for marker in markers):
            await self._refuse(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        answer = next((render for prefix, render in self.answers.items()
                       if path == prefix or path.startswith(prefix.rstrip("/") + "/")), problem_response)
        await answer(Request(scope, receive), NUL_CHARACTER)(scope, receive, send)


def value_problem(error: Exception) -> Problem | None:
    """The problem to answer when the database refused a value the request carried (a number beyond
    its column's range, on PostgreSQL a DataError, on SQLite an OverflowError): the client's error,
    not the platform's. None for anything else."""
    cause = error.orig if isinstance(error, StatementError) else error
    if isinstance(error, DataError) or isinstance(cause, OverflowError):
        return Problem("A value in this request is out of the range the platform accepts (an id, an offset or "
                       "a number too large).", code="value_out_of_range", status=422, title="Invalid value")
    return None


def _loc_to_field(loc: tuple) -> str:
    # ("body", "document", "number") -> "document.number"; drop the transport part.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[-1] if loc else "")


class RequestIdMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` when short and printable, else a fresh
    one): in ``request.state.request_id``, in the context the audit trail reads (``current_request_id``),
    on the answer's ``X-Request-ID`` header, and in the log line of the request.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs the rest of the app in a task
    of its own and streams its answer back through a memory channel: on a busy hot path that plumbing
    cost more CPU than the empty endpoint itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        # Accept a caller's id only when it is short and printable; otherwise mint one.
        rid = incoming.decode("latin-1") if 0 < len(incoming) <= 64 else ""
        if not rid or not rid.isprintable():
            rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid  # request.state.request_id
        started = time.perf_counter()
        status = 0
        rid_header = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(name, value) for name, value in message.get("headers", ()) if name.lower() != b"x-request-id"]
                headers.append(rid_header)
                message = {**message, "headers": headers}
            await send(message)

        token = current_request_id.set(rid)  # seen by the request's Ctx (the audit trail records it)
        client = scope.get("client")
        address = current_client_address.set(client[0] if client else None)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
            current_client_address.reset(address)
        if status:
            log.info("request", extra={"request_id": rid, "method": scope["method"], "path": scope["path"],
                                       "status": status, "ms": round((time.perf_counter() - started) * 1000, 2)})


# -- the OpenAPI document says what the handlers below answer ---------------------------------------

PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "RFC 9457 problem details: branch on `code`, show `detail`; `errors` points at fields.",
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "Stable machine code, e.g. card_not_found"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "code", "message"],
            "properties": {"field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}},
        }},
    },
    "additionalProperties": True,  # a problem may carry more (retry_after, the first answer's id ...)
}
# The refusals any operation can answer, whoever calls it: a malformed or NUL-carrying request (400),
# no or a wrong sign-in or signature (401), a caller without the role (403), an id nobody holds (404),
# a clash with the current state or an Idempotency-Key reused (409), a value breaking a rule (422), a
# rate limit (429).
PROBLEM_STATUSES = {
    400: "Malformed request (bad_request, nul_character ...)",
    401: "Sign-in or signature missing or refused",
    403: "The caller may not do this",
    404: "Not found",
    409: "Conflicts with the current state",
    422: "A value breaks a rule (validation_failed, value_out_of_range, a domain's own code)",
    429: "Too many requests (Retry-After says when to come back)",
}
_FRAMEWORK_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):  # noqa: ANN202
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):  # noqa: ANN202
        errors = []
        for err in exc.errors():
            field = _loc_to_field(tuple(err.get("loc", ())))
            errors.append({"field": field, "code": err.get("type", "invalid"), "message": err.get("msg", "")})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "The request is not valid."
        return problem_response(
            request,
            Problem(detail, code="validation_failed", status=422, title="Invalid request", errors=errors),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):  # noqa: ANN202
        code = STATUS_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        answer = problem_response(request, Problem(detail, code=code, status=exc.status_code, title=detail))
        # The router's own headers stay on the answer: a 405 names the methods allowed (RFC 9110 §15.5.6).
        for name, value in (exc.headers or {}).items():
            answer.headers.setdefault(name, value)
        return answer

    @app.exception_handler(StatementError)
    @app.exception_handler(OverflowError)
    async def _value(request: Request, exc: Exception):  # noqa: ANN202
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            # The database went away under the request (a restart, a failover): nothing of it was
            # committed, and the pool reconnects for the next one.
            log.warning("the database connection was lost", extra={"request_id": request_id(request)})
            return problem_response(request, Problem(
                "The database is not answering; nothing was changed. Try again shortly.",
                code="database_unavailable", status=503, title="Database unavailable", retry_after=1))
        problem = value_problem(exc)
        if problem is None:
            return await _unexpected(request, exc)
        log.warning("a value the database refused", extra={"request_id": request_id(request),
                                                            "error": type(exc).__name__})
        return problem_response(request, problem)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # noqa: ANN202
        log.exception("unhandled error", extra={"request_id": request_id(request)})
        return problem_response(
            request,
            Problem(
                "The platform failed to handle this request; it has been logged under this request id.",
                code="internal_error",
                status=500,
                title="Internal error",
            ),
        )
