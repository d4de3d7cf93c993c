"""Errors a client can cause, and how they reach the wire (RFC 9457 problem+json).

Services raise :class:`Problem` (or a subclass) with a stable machine ``code``; they know nothing of
HTTP beyond the status number that best describes the failure. The app turns every Problem into an
``application/problem+json`` answer; anything else becomes a bare 500 with a request id and no trace.
"""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    """A failure the caller can understand and act on."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.errors = errors or []
        self.extra = extra

    def body(self, instance: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://ehc.example/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if request_id:
            body["request_id"] = request_id
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class Invalid(Problem):
    """The request is well-formed but a value breaks a rule (422)."""

    status = 422
    code = "invalid"
    title = "Invalid value"


class NotFound(Problem):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(Problem):
    """The request clashes with the current state (409)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class Forbidden(Problem):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Unauthorized(Problem):
    status = 401
    code = "unauthenticated"
    title = "Sign-in required"


class TooManyRequests(Problem):
    """Too many tries or requests; ``retry_after`` (seconds) says when to come back (429)."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"


def field_error(field: str, code: str, message: str) -> dict[str, str]:
    """One entry of a problem's ``errors`` list, pointing at a request field."""
    return {"field": field, "code": code, "message": message}
