"""SM2 (GB/T 32918) signatures: the only module that touches the SM2 implementation (tongsuopy).

Signatures are DER-encoded (r, s) over SM3(Z_A || message) with the standard default user id
``1234567812345678``, which is what OpenSSL does with ``-sigopt distid:1234567812345678``.
Swap the implementation here and nothing else changes.
"""

from __future__ import annotations

from functools import cached_property

from tongsuopy.crypto import hashes as _th
from tongsuopy.crypto import serialization as _ser
from tongsuopy.crypto.asymciphers import ec as _ec
from tongsuopy.crypto.exceptions import InvalidSignature

from .sm3 import sm3

DEFAULT_USER_ID = b"1234567812345678"
_ALGORITHM = _ec.ECDSA(_th.SM3())


class SM2PublicKey:

    def __init__(self, key: _ec.EllipticCurvePublicKey) -> None:
        if not isinstance(key.curve, _ec.SM2):
            raise ValueError("not an SM2 public key")
        self._key = key

    @classmethod
    def from_pem(cls, pem: bytes | str) -> "SM2PublicKey":
        data = pem.encode() if isinstance(pem, str) else pem
        return cls(_ser.load_pem_public_key(data))

    @classmethod
    def from_point(cls, point: bytes) -> "SM2PublicKey":
        """From the 65-byte uncompressed point 04 || x || y."""
        return cls(_ec.EllipticCurvePublicKey.from_encoded_point(_ec.SM2(), point))

    def to_pem(self) -> bytes:
        return self._key.public_bytes(_ser.Encoding.PEM, _ser.PublicFormat.SubjectPublicKeyInfo)

    @cached_property
    def point(self) -> bytes:
        return self._key.public_bytes(_ser.Encoding.X962, _ser.PublicFormat.UncompressedPoint)

    @cached_property
    def fingerprint(self) -> str:
        """SM3 of the uncompressed point, hex: a stable name for this key."""
        return sm3(self.point).hex()

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True only for a valid DER signature of ``message`` by this key; never raises on bad input."""
        try:
            self._key.verify(signature, message, _ALGORITHM)
        except (InvalidSignature, ValueError, TypeError):
            return False
        except Exception:  # malformed DER surfaces as library-specific errors
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other.point == self.point

    def __hash__(self) -> int:
        return hash(self.point)


class SM2PrivateKey:

    def __init__(self, key: _ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, _ec.SM2):
            raise ValueError("not an SM2 private key")
        self._key = key

    @classmethod
    def generate(cls) -> "SM2PrivateKey":
        return cls(_ec.generate_private_key(_ec.SM2()))

    @classmethod
    def from_pem(cls, pem: bytes | str) -> "SM2PrivateKey":
        data = pem.encode() if isinstance(pem, str) else pem
        return cls(_ser.load_pem_private_key(data, password=None))

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            _ser.Encoding.PEM, _ser.PrivateFormat.PKCS8, _ser.NoEncryption()
        )

    @cached_property
    def public_key(self) -> SM2PublicKey:
        return SM2PublicKey(self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        """DER signature over SM3(Z_A || message), a fresh random nonce each time."""
        return self._key.sign(message, _ALGORITHM)
