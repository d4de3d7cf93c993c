"""Personal data at rest: sealing (SM4-GCM) and the blind index (HMAC-SM3).

A sealed value is text: ``<key id>.<base64url(nonce || ciphertext || tag)>``. The key id beside the
ciphertext lets sealing keys rotate: new values use the active key, old ones open with theirs.
The *context* is bound as associated data, so a sealed value copied into another column fails to
open instead of reading as the wrong thing. ``person.name`` binds the column only; to stop a value
being moved to another person's row as well, the caller puts the row's stable id in the context
(e.g. ``person.name:<person id>``).

The blind index is a keyed digest of a normalised value, for equality lookups (same document,
same phone) without storing the value. Without the index key nobody can test a guess against it.
"""

from __future__ import annotations

import base64
import binascii

from .keystore import KeyStore
from .sm3 import hmac_sm3_keyed
from .sm4 import GcmSealer, SealBroken, gcm_decrypt, gcm_encrypt


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sealer:
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def seal(self, value: str, context: str) -> str:
        info = self._keys.active("sealing")
        blob = gcm_encrypt(self._keys.secret(info.id), value.encode("utf-8"), context.encode())
        return f"{info.id}.{_b64e(blob)}"

    def seal_optional(self, value: str | None, context: str) -> str | None:
        return None if value is None or value == "" else self.seal(value, context)

    def pinned(self) -> "PinnedSealer":
        """A sealer bound to the sealing key active now, for a bounded run of values (one batch of
        a bulk import): the key store is consulted once instead of for every value. Hold it only for
        such a batch, so a rotation made meanwhile is followed from the next batch on."""
        info = self._keys.active("sealing")
        return PinnedSealer(info.id, self._keys.secret(info.id))

    def open(self, sealed: str, context: str) -> str:
        key_id, _, body = sealed.partition(".")
        if not body:
            raise SealBroken("not a sealed value")
        try:
            key = self._keys.secret(key_id)
        except Exception as exc:
            raise SealBroken(f"sealing key {key_id} is not in the key store") from exc
        if self._keys.withdrawn(key_id):
            raise SealBroken(f"sealing key {key_id} was withdrawn")
        try:
            blob = _b64d(body)
        except (binascii.Error, ValueError) as exc:  # truncated or garbled text in the column
            raise SealBroken("sealed value is not valid base64url") from exc
        return gcm_decrypt(key, blob, context.encode()).decode("utf-8")

    def open_optional(self, sealed: str | None, context: str) -> str | None:
        return None if sealed is None else self.open(sealed, context)

    @staticmethod
    def key_id_of(sealed: str) -> str:
        return sealed.partition(".")[0]


class PinnedSealer:
    """``Sealer.seal`` under one given key (see ``Sealer.pinned``); the same format and binding."""

    def __init__(self, key_id: str, key: bytes) -> None:
        self.key_id = key_id
        self._prefix = key_id + "."
        self._gcm = GcmSealer(key)

    def seal(self, value: str, context: str) -> str:
        return self._prefix + _b64e(self._gcm.encrypt(value.encode("utf-8"), context.encode()))

    def seal_optional(self, value: str | None, context: str) -> str | None:
        return None if value is None or value == "" else self.seal(value, context)


class BlindIndex:
    def __init__(self, keys: KeyStore) -> None:
        self._mac = hmac_sm3_keyed(keys.secret(keys.active("index").id))

    def __call__(self, context: str, normalised: str) -> str:
        """64 hex characters; equal inputs (after normalisation by the caller) give equal outputs."""
        return self._mac(context.encode() + b"\x00" + normalised.encode("utf-8")).hex()
