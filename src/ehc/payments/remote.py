"""The medical-insurance service and the bank, reached over HTTP (docs/payments.md, "The services").

Both sign every answer and callback with SM2 (``X-Signature``: base64 of a DER signature over the
body's bytes). Their public keys are pinned from ``EHC_INSURANCE_KEY`` / ``EHC_BANK_KEY`` (a PEM file)
when set, else read once per process from the service's ``/key``, as a first contact would.

A call ends in one of three ways, and the settlement logic treats them differently:

- an answer (2xx, signed): the result;
- :class:`Refused` (4xx, signed): a definite no, with the service's code; nothing happened there;
- :class:`Uncertain`: a timeout, a 5xx, a connection error, a broken signature. The call may or may
  not have taken effect, so it is retried with the same id (every mutating call is idempotent on the
  service's side) or settled by asking the service, never assumed either way.

Each client counts its calls and the seconds spent waiting for the service (``calls``, ``seconds``:
the HTTP exchange only, not the signature check), so a benchmark running the platform in-process can
tell the services' share of a request from the platform's own (``bench/bench_payments.py``).
"""

from __future__ import annotations

import base64
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..crypto import SM2PublicKey


class Uncertain(Exception):
    """No definite answer: the call may or may not have taken effect."""


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass
class Remote:
    """One service: its base URL, how long to wait, and its pinned key."""

    name: str  # insurer | bank
    base_url: str
    timeout: float
    key_file: str = ""
    _key: SM2PublicKey | None = field(default=None, init=False, repr=False)
    _client: httpx.Client = field(init=False, repr=False)
    calls: int = field(default=0, init=False)  # calls made (answered or not)
    seconds: float = field(default=0.0, init=False)  # time spent in those calls' HTTP exchanges
    _count_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._client = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout)

    def _count(self, started: float) -> None:
        elapsed = time.perf_counter() - started
        with self._count_lock:
            self.calls += 1
            self.seconds += elapsed

    @property
    def key(self) -> SM2PublicKey:
        if self._key is None:
            if self.key_file:
                self._key = SM2PublicKey.from_pem(Path(self.key_file).read_bytes())
            else:
                try:
                    answer = self._client.get("/key")
                    answer.raise_for_status()
                    self._key = SM2PublicKey.from_pem(answer.json()["public_key_pem"])
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    raise Uncertain(f"{self.name}: its key could not be read ({exc})") from None
        return self._key

    def verify(self, body: bytes, signature: str | None) -> bool:
        try:
            der = base64.b64decode(signature or "", validate=True)
        except ValueError:
            return False
        return bool(der) and self.key.verify(der, body)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call; the signed JSON answer, or :class:`Refused` / :class:`Uncertain`."""
        started = time.perf_counter()
        try:
            answer = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise Uncertain(f"{self.name}: {type(exc).__name__}") from None
        finally:
            self._count(started)
        if answer.status_code >= 500:
            raise Uncertain(f"{self.name}: HTTP {answer.status_code}")
        if not self.verify(answer.content, answer.headers.get("X-Signature")):
            raise Uncertain(f"{self.name}: the answer's signature does not verify")
        try:
            data = answer.json()
        except ValueError:
            raise Uncertain(f"{self.name}: the answer is not JSON") from None
        if answer.status_code >= 400:
            raise Refused(str(data.get("code", "refused")), str(data.get("message", "")))
        return data

    def text(self, path: str) -> str:
        """A signed text document (a statement file)."""
        try:
            answer = self._client.get(path, timeout=max(self.timeout, 60.0))
        except httpx.HTTPError as exc:
            raise Uncertain(f"{self.name}: {type(exc).__name__}") from None
        if answer.status_code >= 400 or not self.verify(answer.content, answer.headers.get("X-Signature")):
            raise Uncertain(f"{self.name}: the statement could not be fetched (HTTP {answer.status_code})")
        return answer.text


_remotes: dict[tuple[str, str, float], Remote] = {}
_lock = threading.Lock()


def remote(name: str, base_url: str, timeout: float) -> Remote:
    """The process's client of one service (connections and the pinned key are kept between calls)."""
    key = (name, base_url, timeout)
    with _lock:
        if key not in _remotes:
            env = "EHC_INSURANCE_KEY" if name == "insurer" else "EHC_BANK_KEY"
            _remotes[key] = Remote(name, base_url, timeout, os.environ.get(env, ""))
        return _remotes[key]


def in_use() -> list[Remote]:
    """The process's service clients made so far (their ``calls`` and ``seconds`` counters)."""
    with _lock:
        return list(_remotes.values())

