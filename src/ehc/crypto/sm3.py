"""SM3 (GB/T 32905) hash and HMAC-SM3, on the `cryptography` package's OpenSSL backend."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def sm3_hasher() -> hashes.Hash:
    """An incremental SM3 (``update(chunk)`` ... ``finalize()``), for streams too big to hold."""
    return hashes.Hash(hashes.SM3())


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def hmac_sm3_keyed(key: bytes):  # noqa: ANN201 - a function bytes -> bytes
    """``hmac_sm3`` with the key fixed: the keyed state is computed once and copied for each message
    (half the cost of ``hmac_sm3`` for short messages such as blind-index inputs)."""
    base = hmac.HMAC(key, hashes.SM3())

    def mac(data: bytes) -> bytes:
        one = base.copy()
        one.update(data)
        return one.finalize()

    return mac


def hmac_sm3_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    try:
        mac.verify(tag)
    except Exception:
        return False
    return True
