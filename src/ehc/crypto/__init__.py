"""National-algorithm cryptography, behind a small surface.

Domain code uses only what is exported here: SM2 keys that sign and verify, SM3 digests, the key
store, the PII ``Sealer`` and the ``BlindIndex``. No domain module touches curve math or cipher modes.
"""

from .keystore import KeyInfo, KeyStore, KeyStoreError
from .pii import BlindIndex, Opener, PinnedSealer, Sealer
from .sm2 import DEFAULT_USER_ID, SM2PrivateKey, SM2PublicKey
from .sm3 import hmac_sm3, hmac_sm3_verify, sm3, sm3_hasher
from .sm4 import SealBroken

__all__ = [
    "BlindIndex",
    "DEFAULT_USER_ID",
    "KeyInfo",
    "KeyStore",
    "KeyStoreError",
    "Opener",
    "PinnedSealer",
    "SM2PrivateKey",
    "SM2PublicKey",
    "SealBroken",
    "Sealer",
    "hmac_sm3",
    "hmac_sm3_verify",
    "sm3",
    "sm3_hasher",
]
