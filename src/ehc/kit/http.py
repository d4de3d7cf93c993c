"""HTTP plumbing shared by every router: problem+json answers and request ids.

Kept apart from the services: they raise Problems, this module shapes them for the wire.
"""

from __future__ import annotations

import logging
import secrets
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from .context import current_request_id
from .errors import Problem

log = logging.getLogger("ehc.http")
PROBLEM_JSON = "application/problem+json"

_STATUS_CODES = {
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


def _loc_to_field(loc: tuple) -> str:
    # ("body", "document", "number") -> "document.number"; drop the transport part.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[-1] if loc else "")


class RequestIdMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):  # noqa: ANN001
        incoming = request.headers.get("X-Request-ID", "")
        # Accept a caller's id only when it is short and printable; otherwise mint one.
        rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else secrets.token_hex(8)
        request.state.request_id = rid
        started = time.perf_counter()
        token = current_request_id.set(rid)  # seen by the request's Ctx (the audit trail records it)
        try:
            response = await call_next(request)
        finally:
            current_request_id.reset(token)
        response.headers["X-Request-ID"] = rid
        log.info(
            "request",
            extra={
                "request_id": rid,
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return response


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
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return problem_response(request, Problem(detail, code=code, status=exc.status_code, title=detail))

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
