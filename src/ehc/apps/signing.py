"""The signed machine API's canonical form: the one definition the server and ``ehc.client`` share.

Scheme ``EHC-SM2-V1``. The string to sign is nine lines joined by ``\\n`` (no trailing newline)::

    EHC-SM2-V1
    <METHOD, upper-case>
    <path exactly as sent, percent-encoded form, without the query>
    <canonical query>
    <hex SM3 of the raw body bytes; SM3 of the empty string when there is no body>
    <timestamp: unix seconds, the X-EHC-Timestamp header verbatim>
    <nonce: the X-EHC-Nonce header, 16-64 characters of [A-Za-z0-9_-]>
    <app id>
    <key id>

Canonical query: the query string is parsed the way the server reads its parameters
(``application/x-www-form-urlencoded``: split on ``&``, then on the first ``=``, percent-decode,
``+`` is a space, blank values kept, empty pieces skipped); every key and value is re-encoded as UTF-8
with RFC 3986 percent-encoding (everything but ``A-Z a-z 0-9 - . _ ~`` becomes ``%XX``, upper-case
hex); the pairs are sorted by encoded key, then encoded value; joined as ``k=v`` with ``&``. No query
gives an empty line. Signing what the server decodes (rather than the raw bytes) means a client
library that re-orders or re-encodes parameters cannot break a signature, and two query strings that
the server reads the same way sign the same.

The signature is SM2 (GB/T 32918) with the default user id ``1234567812345678`` over the UTF-8 bytes
of that string, DER-encoded, sent base64 (RFC 4648 section 4, with padding) in ``X-EHC-Signature``.
``openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:1234567812345678`` makes the same.

Nothing here touches HTTP frameworks or the database.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from ..crypto import SM2PrivateKey, sm3
from ..kit.clock import unix_now

SCHEME = "EHC-SM2-V1"
MAX_SKEW_SECONDS = 300  # a timestamp further than this from the platform's clock is refused

HEADER_APP_ID = "X-EHC-App-Id"
HEADER_KEY_ID = "X-EHC-Key-Id"
HEADER_TIMESTAMP = "X-EHC-Timestamp"
HEADER_NONCE = "X-EHC-Nonce"
HEADER_SIGNATURE = "X-EHC-Signature"
SIGNATURE_HEADERS = (HEADER_APP_ID, HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
# Optional, not signed: who sits at the hospital's window, and the channel the request comes through.
HEADER_OPERATOR = "X-EHC-Operator"
HEADER_CHANNEL = "X-EHC-Channel"
# Optional, not signed: the department of the institution the call is made for (a code of the
# institution's departments), vouched for by the hospital's system as it vouches for the operator.
HEADER_DEPARTMENT = "X-EHC-Department"
MAX_OPERATOR_LENGTH = 64

NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")  # app ids and key ids
TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,12}")
MAX_SIGNATURE_LENGTH = 200  # base64 of a DER SM2 signature is at most 96 characters

EMPTY_BODY_SM3 = sm3(b"").hex()


class MalformedHeaders(ValueError):
    """The signing headers are missing or not in their documented form."""


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((_encode(k), _encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _encode(text: str) -> str:
    # quote() never encodes A-Z a-z 0-9 _ . - ~; with safe="" everything else is %XX, upper-case.
    return quote(text, safe="", encoding="utf-8")


def body_digest(body: bytes | None) -> str:
    return sm3(body).hex() if body else EMPTY_BODY_SM3


def string_to_sign(
    *,
    method: str,
    path: str,
    query: str,
    body: bytes | None,
    timestamp: str,
    nonce: str,
    app_id: str,
    key_id: str,
) -> str:
    """The canonical form. ``path`` is the percent-encoded path as sent; ``query`` the raw query
    string (without ``?``), canonicalised here."""
    return "\n".join(
        [SCHEME, method.upper(), path, canonical_query(query), body_digest(body), timestamp, nonce, app_id, key_id]
    )


def new_nonce() -> str:
    return secrets.token_urlsafe(24)  # 32 characters of [A-Za-z0-9_-], 192 random bits


def sign(
    private_key: SM2PrivateKey,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes | None,
    app_id: str,
    key_id: str,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The five signing headers for one request."""
    ts = str(int(unix_now()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    message = string_to_sign(method=method, path=path, query=query, body=body, timestamp=ts, nonce=nonce,
                             app_id=app_id, key_id=key_id)
    return {
        HEADER_APP_ID: app_id,
        HEADER_KEY_ID: key_id,
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: base64.b64encode(private_key.sign(message.encode("utf-8"))).decode("ascii"),
    }


def is_signed(headers: Mapping[str, str]) -> bool:
    """Does the request try the machine API (any signing header present)?"""
    return any(headers.get(h) is not None for h in SIGNATURE_HEADERS)


@dataclass(frozen=True)
class SignedHeaders:
    app_id: str
    key_id: str
    timestamp: str
    nonce: str
    signature: bytes

    @property
    def unix_time(self) -> int:
        return int(self.timestamp)


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The signing headers, checked for form only; raises :class:`MalformedHeaders` naming the first
    header that is missing or malformed."""
    values = {}
    for name in SIGNATURE_HEADERS:
        value = headers.get(name)
        if value is None or value == "":
            raise MalformedHeaders(f"{name} is missing.")
        values[name] = value
    for name, pattern, rule in (
        (HEADER_APP_ID, ID_PATTERN, "1-32 characters of A-Z a-z 0-9 _ -"),
        (HEADER_KEY_ID, ID_PATTERN, "1-32 characters of A-Z a-z 0-9 _ -"),
        (HEADER_TIMESTAMP, TIMESTAMP_PATTERN, "unix time in whole seconds, digits only"),
        (HEADER_NONCE, NONCE_PATTERN, "16-64 characters of A-Z a-z 0-9 _ -"),
    ):
        if not pattern.fullmatch(values[name]):
            raise MalformedHeaders(f"{name} must be {rule}.")
    raw = values[HEADER_SIGNATURE]
    try:
        if len(raw) > MAX_SIGNATURE_LENGTH:
            raise ValueError
        signature = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedHeaders(f"{HEADER_SIGNATURE} must be the base64 (with padding) of a DER SM2 signature.") from None
    if not signature:
        raise MalformedHeaders(f"{HEADER_SIGNATURE} is empty.")
    return SignedHeaders(
        app_id=values[HEADER_APP_ID],
        key_id=values[HEADER_KEY_ID],
        timestamp=values[HEADER_TIMESTAMP],
        nonce=values[HEADER_NONCE],
        signature=signature,
    )
