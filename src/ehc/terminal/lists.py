"""The signed lists a terminal verifies against (docs/qr-format.md §11, §12), read and checked.

Pure: no network and no files. :func:`open_envelope` checks the root key's signature over the exact
payload bytes; :class:`TrustList` answers which issuing key may verify a code; :class:`Revocations`
holds the revocation ids of static codes and applies incremental updates.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime

from ..crypto import SM2PublicKey
from ..kit.errors import Problem
from ..qr import codec

TRUST_LIST_FORMAT = "ehc-trust-list"
REVOCATION_LIST_FORMAT = "ehc-revocation-list"
LIST_VERSION = 1


class TerminalProblem(Problem):
    """A refusal on the terminal's side that is not about the scanned code itself."""

    status = 422
    code = "terminal_error"
    title = "Terminal cannot verify"


class ListSignatureInvalid(TerminalProblem):
    code = "list_signature_invalid"


class ListMalformed(TerminalProblem):
    code = "list_malformed"


class ListSerialLower(TerminalProblem):
    code = "list_serial_lower"


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def open_envelope(envelope: object, root: SM2PublicKey, expected_format: str) -> dict:
    """The payload of a list envelope, only if the pinned root key signed its exact bytes."""
    try:
        data = b64url_decode(envelope["payload"])  # type: ignore[index]
        signature = b64url_decode(envelope["signature"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError, binascii.Error):
        raise ListMalformed("The list is not an envelope {payload, kid, signature}.") from None
    if not root.verify(signature, data):
        raise ListSignatureInvalid("The list is not signed by the pinned root key: refused.")
    try:
        payload = json.loads(data)
    except ValueError:
        raise ListMalformed("The signed list is not JSON.") from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise ListMalformed(f"Expected a list of format {expected_format}.")
    if payload.get("version") != LIST_VERSION or not isinstance(payload.get("serial"), int):
        raise ListMalformed(f"This terminal reads list version {LIST_VERSION}, with an integer serial.")
    return payload


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# -- trust list ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrustedKey:
    kid: str
    public: SM2PublicKey
    sign_from: datetime
    sign_until: datetime | None
    accept_dynamic_until: datetime | None
    accept_static: bool

    def accepts(self, payload: codec.Payload, now: datetime) -> bool:
        """§11: the code's iat inside the key's signing period, and the key still accepted for its type."""
        iat = datetime.fromtimestamp(payload.issued_at, self.sign_from.tzinfo)
        if iat < self.sign_from or (self.sign_until is not None and iat > self.sign_until):
            return False
        if payload.type is codec.CodeType.STATIC:
            return self.accept_static
        return self.accept_dynamic_until is None or now <= self.accept_dynamic_until


@dataclass(frozen=True)
class TrustList:
    serial: int
    issued_at: datetime
    next_update: datetime
    keys: dict[str, TrustedKey]

    @classmethod
    def from_payload(cls, payload: dict) -> TrustList:
        try:
            keys = {}
            for k in payload["keys"]:
                keys[k["kid"]] = TrustedKey(
                    kid=k["kid"], public=SM2PublicKey.from_point(b64url_decode(k["point"])),
                    sign_from=parse_time(k["sign_from"]), sign_until=parse_time(k.get("sign_until")),
                    accept_dynamic_until=parse_time(k.get("accept_dynamic_until")),
                    accept_static=bool(k["accept_static"]))
            return cls(payload["serial"], parse_time(payload["issued_at"]), parse_time(payload["next_update"]), keys)
        except (KeyError, TypeError, ValueError) as exc:
            raise ListMalformed(f"The trust list does not follow §11: {exc}") from None

    def lookup_for(self, payload: codec.Payload, now: datetime) -> codec.KeyLookup:
        """The codec's key look-up for this code: a key only when its rules accept the code (step 6)."""

        def lookup(key_id: str) -> SM2PublicKey | None:
            key = self.keys.get(key_id)
            return key.public if key is not None and key.accepts(payload, now) else None

        return lookup


# -- revocation list -----------------------------------------------------------------------------
@dataclass
class Revocations:
    serial: int = 0
    issued_at: datetime | None = None
    rids: set[str] = field(default_factory=set)

    def apply(self, payload: dict) -> None:
        """A full list replaces; an incremental one (``since`` = our serial) adds and removes."""
        serial, issued = payload["serial"], parse_time(payload.get("issued_at"))
        if serial < self.serial:
            raise ListSerialLower(f"The revocation list went back from serial {self.serial} to {serial}: refused.")
        if self.issued_at is not None and issued is not None and issued < self.issued_at:
            raise ListSerialLower("The revocation list is older than the one cached: refused.")
        try:
            if payload.get("full"):
                rids = {_rid(r) for r in payload["rids"]}
            else:
                if payload.get("since") != self.serial:
                    raise ListMalformed(f"Changes since serial {payload.get('since')} do not start at ours "
                                        f"({self.serial}).")
                rids = (self.rids | {_rid(r) for r in payload["added"]}) - {_rid(r) for r in payload["removed"]}
        except (KeyError, TypeError) as exc:
            raise ListMalformed(f"The revocation list does not follow §12: {exc}") from None
        self.serial, self.issued_at, self.rids = serial, issued, rids

    def to_json(self) -> dict:
        return {"serial": self.serial, "issued_at": self.issued_at.isoformat() if self.issued_at else None,
                "rids": sorted(self.rids)}

    @classmethod
    def from_json(cls, data: dict) -> Revocations:
        return cls(data["serial"], parse_time(data.get("issued_at")), set(data["rids"]))


def _rid(value: object) -> str:
    if not isinstance(value, str) or len(value) != 16 or any(c not in "0123456789abcdef" for c in value):
        raise ListMalformed(f"{value!r} is not a revocation id (16 lower-case hex digits).")
    return value
