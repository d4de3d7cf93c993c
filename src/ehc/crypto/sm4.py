"""SM4 (GB/T 32907) in GCM, an authenticated mode: tampering is detected, never silently decrypted."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16


class SealBroken(Exception):
    """The ciphertext, its associated data or the key does not match: refuse to open."""


def gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Return nonce || ciphertext || tag. A fresh random 96-bit nonce every call."""
    nonce = os.urandom(NONCE_SIZE)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    if aad:
        enc.authenticate_additional_data(aad)
    body = enc.update(plaintext) + enc.finalize()
    return nonce + body + enc.tag


class GcmSealer:
    """``gcm_encrypt`` under one key, for many values in a row (a bulk import's batch).

    The key schedule object is built once, and the random nonces are drawn from the OS in blocks
    instead of one system call each (the same source; each nonce is still 96 fresh random bits, used
    once). OpenSSL's GCM context itself cannot be reused through the ``cryptography`` API (it
    refuses ``reset_nonce`` for GCM), so each value still pays for one context.
    """

    _BLOCK = 256  # nonces drawn per system call

    def __init__(self, key: bytes) -> None:
        self._algorithm = algorithms.SM4(key)
        self._nonces = b""
        self._at = 0

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        at = self._at
        if at >= len(self._nonces):
            self._nonces, at = os.urandom(NONCE_SIZE * self._BLOCK), 0
        nonce = self._nonces[at:at + NONCE_SIZE]
        self._at = at + NONCE_SIZE
        enc = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        if aad:
            enc.authenticate_additional_data(aad)
        body = enc.update(plaintext) + enc.finalize()
        return nonce + body + enc.tag


def gcm_decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    return gcm_decrypt_with(algorithms.SM4(key), blob, aad)


def gcm_algorithm(key: bytes) -> algorithms.SM4:
    """The key schedule object for :func:`gcm_decrypt_with`, built once for many values under one key."""
    return algorithms.SM4(key)


def gcm_decrypt_with(algorithm: algorithms.SM4, blob: bytes, aad: bytes = b"") -> bytes:
    """``gcm_decrypt`` under a key object already built (:func:`gcm_algorithm`): opening many values
    (a batch linkage's export of the index) skips building it for each."""
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise SealBroken("sealed value too short")
    nonce, body, tag = blob[:NONCE_SIZE], blob[NONCE_SIZE:-TAG_SIZE], blob[-TAG_SIZE:]
    dec = Cipher(algorithm, modes.GCM(nonce, tag)).decryptor()
    if aad:
        dec.authenticate_additional_data(aad)
    try:
        return dec.update(body) + dec.finalize()
    except InvalidTag as exc:
        raise SealBroken("sealed value failed authentication") from exc


def ecb_encrypt_block(key: bytes, block: bytes) -> bytes:
    """One raw block, only for checking the standard test vector."""
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()
