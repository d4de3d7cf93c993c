"""Encryption under an operator's passphrase (a backup's key store): Argon2id, then SM4-GCM.

The blob says how its key was derived, so a later version can raise the cost and still open old
backups: ``EHCPW1 || salt (16) || time cost, memory KiB, lanes (3 x uint32) || nonce || ct || tag``.
The header is bound as associated data: changing the cost or the salt makes the blob fail to open.
"""

from __future__ import annotations

import os
import struct

from argon2.low_level import Type, hash_secret_raw

from .sm4 import KEY_SIZE, SealBroken, gcm_decrypt, gcm_encrypt

MAGIC = b"EHCPW1"
SALT_SIZE = 16
# About a second and 64 MiB per try on a server core: slow for a guesser, fine for an operator.
TIME_COST, MEMORY_KIB, LANES = 3, 64 * 1024, 1
MIN_PASSPHRASE = 12


class PassphraseTooShort(ValueError):
    pass


def _key(passphrase: str, salt: bytes, time_cost: int, memory_kib: int, lanes: int) -> bytes:
    return hash_secret_raw(passphrase.encode("utf-8"), salt, time_cost=time_cost, memory_cost=memory_kib,
                           parallelism=lanes, hash_len=KEY_SIZE, type=Type.ID)


def encrypt(data: bytes, passphrase: str) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise PassphraseTooShort(f"a passphrase has at least {MIN_PASSPHRASE} characters")
    salt = os.urandom(SALT_SIZE)
    header = MAGIC + salt + struct.pack(">III", TIME_COST, MEMORY_KIB, LANES)
    return header + gcm_encrypt(_key(passphrase, salt, TIME_COST, MEMORY_KIB, LANES), data, header)


def decrypt(blob: bytes, passphrase: str) -> bytes:
    """The data, or :class:`SealBroken` for a wrong passphrase or a damaged blob (indistinguishable)."""
    size = len(MAGIC) + SALT_SIZE + 12
    if len(blob) < size or not blob.startswith(MAGIC):
        raise SealBroken("not a passphrase-encrypted blob")
    header = blob[:size]
    salt = header[len(MAGIC):len(MAGIC) + SALT_SIZE]
    time_cost, memory_kib, lanes = struct.unpack(">III", header[-12:])
    if not (1 <= time_cost <= 100 and 8 <= memory_kib <= 4 * 1024 * 1024 and 1 <= lanes <= 64):
        raise SealBroken("implausible key-derivation cost")
    return gcm_decrypt(_key(passphrase, salt, time_cost, memory_kib, lanes), blob[size:], header)
