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


def hmac_sm3_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    try:
        mac.verify(tag)
    except Exception:
        return False
    return True
