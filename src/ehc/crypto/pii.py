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
from .sm4 import GcmSealer, SealBroken, gcm_algorithm, gcm_decrypt, gcm_decrypt_with, gcm_encrypt


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
        return gcm_decrypt(_usable_key(self._keys, key_id), _blob(body), context.encode()).decode("utf-8")

    def open_optional(self, sealed: str | None, context: str) -> str | None:
        return None if sealed is None else self.open(sealed, context)

    @staticmethod
    def key_id_of(sealed: str) -> str:
        return sealed.partition(".")[0]

    def opener(self) -> "Opener":
        """``open`` for a bounded run of values (a batch linkage's export of the whole index)."""
        return Opener(self._keys)


def _usable_key(keys: KeyStore, key_id: str) -> bytes:
    try:
        key = keys.secret(key_id)
    except Exception as exc:
        raise SealBroken(f"sealing key {key_id} is not in the key store") from exc
    if keys.withdrawn(key_id):
        raise SealBroken(f"sealing key {key_id} was withdrawn")
    return key


def _blob(body: str) -> bytes:
    try:
        return _b64d(body)
    except (binascii.Error, ValueError) as exc:  # truncated or garbled text in the column
        raise SealBroken("sealed value is not valid base64url") from exc


class Opener:
    """``Sealer.open`` for many values in a row: each sealing key is looked up in the key store, checked
    for withdrawal and turned into its cipher object once, on its first value, instead of for every
    value (the check reads the key store's manifest stamp from disk). Hold it for one bounded run
    (one chunk of an export), so a key withdrawn meanwhile is refused from the next run on."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys
        self._algorithms: dict[str, object] = {}

    def open(self, sealed: str, context: str) -> str:
        key_id, _, body = sealed.partition(".")
        if not body:
            raise SealBroken("not a sealed value")
        algorithm = self._algorithms.get(key_id)
        if algorithm is None:
            algorithm = self._algorithms[key_id] = gcm_algorithm(_usable_key(self._keys, key_id))
        return gcm_decrypt_with(algorithm, _blob(body), context.encode()).decode("utf-8")


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
