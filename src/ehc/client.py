"""``ehc.client``: a Python client for hospital systems, signing every request (EHC-SM2-V1).

    from ehc.client import EhcClient, EhcError

    with EhcClient("https://ehc.example", app_id, key_id, open("app-key.pem", "rb").read(),
                   operator="window-07") as ehc:
        card = ehc.lookup("01", "11010519491231002X")
        ehc.report_lost(card["ehc_id"], reason="lost wallet")

Every method returns the answer's JSON as plain dicts and lists, or raises :class:`EhcError` with the
problem's ``code``, ``status`` and ``detail`` (RFC 9457 problem+json). The canonical form lives in
``ehc.apps.signing``, the same code the platform checks signatures with; :class:`SM2Auth` plugs it into any ``httpx`` client. Each request gets a fresh nonce
and the current time, so a retried call is a new signed request: pass ``idempotency_key`` to calls
that create something, so a retry after a lost answer returns the first result instead of doing the
work twice.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import httpx

from .apps import signing as apps
from .crypto import SM2PrivateKey

__all__ = ["EhcClient", "EhcError", "SM2Auth"]


class EhcError(Exception):
    """The platform refused a request; ``code`` is the stable machine code to branch on."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body or {}


class SM2Auth(httpx.Auth):
    """Adds the EHC-SM2-V1 signing headers to each request an ``httpx`` client sends."""

    requires_request_body = True

    def __init__(self, app_id: str, key_id: str, private_key: SM2PrivateKey | bytes | str, *,
                 clock: Callable[[], float] | None = None) -> None:
        self.app_id = app_id
        self.key_id = key_id
        self.private_key = private_key if isinstance(private_key, SM2PrivateKey) else SM2PrivateKey.from_pem(private_key)
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path, _, query = request.url.raw_path.partition(b"?")
        headers = apps.sign(
            self.private_key,
            method=request.method,
            path=path.decode("ascii"),
            query=query.decode("ascii"),
            body=request.content,
            app_id=self.app_id,
            key_id=self.key_id,
            timestamp=int(self._clock()) if self._clock else None,
        )
        request.headers.update(headers)
        yield request


class EhcClient:
    """A signed, synchronous client of the platform's API.

    ``http`` lets a caller supply the ``httpx.Client`` (connection pool, proxies, TLS settings, or a
    test client wrapping the app in-process); otherwise one is made for ``base_url``.
    """

    def __init__(
        self,
        base_url: str,
        app_id: str,
        key_id: str,
        private_key_pem: bytes | str,
        *,
        operator: str | None = None,
        channel: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.auth = SM2Auth(app_id, key_id, private_key_pem)
        self.operator = operator
        self.channel = channel
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client(timeout=timeout)
        self._base_url = base_url.rstrip("/")

    # -- plumbing --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> "EhcClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send one signed request; the decoded JSON answer, or :class:`EhcError`."""
        extra = dict(headers or {})
        if self.operator:
            extra[apps.HEADER_OPERATOR] = self.operator
        if self.channel:
            extra[apps.HEADER_CHANNEL] = self.channel
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key
        response = self.http.request(method, self._base_url + path, json=json, params=params, headers=extra,
                                     auth=self.auth)
        return _answer(response)

    # -- the card API ----------------------------------------------------------------------------
    def ping(self) -> dict:
        """Who the platform thinks is calling; ``actor_kind`` is ``machine`` when signing works."""
        return self.request("GET", "/api/v1/apps/ping")

    def register(self, registration: dict, *, idempotency_key: str | None = None) -> dict:
        """Apply for a card (``name``, ``document`` {type, number}, ``sex``, ``birth_date``, ``phone``,
        ...); the existing card (``created`` false) when the person already has one."""
        return self.request("POST", "/api/v1/cards", json=registration, idempotency_key=idempotency_key)

    def lookup(self, document_type: str, document_number: str) -> dict:
        return self.request("POST", "/api/v1/cards/lookup",
                            json={"document": {"type": document_type, "number": document_number}})

    def get(self, ehc_id: str) -> dict:
        return self.request("GET", f"/api/v1/cards/{ehc_id}")

    def events(self, ehc_id: str) -> list[dict]:
        return self.request("GET", f"/api/v1/cards/{ehc_id}/events")

    def report_lost(self, ehc_id: str, reason: str | None = None) -> dict:
        return self._action(ehc_id, "report-lost", reason)

    def recover(self, ehc_id: str, reason: str | None = None) -> dict:
        return self._action(ehc_id, "recover", reason)

    def _action(self, ehc_id: str, path: str, reason: str | None) -> dict:
        return self.request("POST", f"/api/v1/cards/{ehc_id}/{path}", json={"reason": reason})


def _answer(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json() if response.content else None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    raise EhcError(response.status_code, body.get("code") or f"http_{response.status_code}",
                   body.get("detail") or response.reason_phrase, body)
