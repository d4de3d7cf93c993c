"""The platform's key store: one directory, one manifest, one file per key.

Keys and what they are for:
- ``root``      SM2. Signs the trust list of QR issuing keys; the anchor terminals pin.
- ``qr``        SM2. Signs QR codes. Rotates; old keys stay published until their codes expire.
- ``sealing``   SM4. Seals personal data at rest. Rotates; old keys stay to open old data.
- ``index``     HMAC-SM3 key of the blind index. Does not rotate in place (every index would change).
- ``qrref``     the QR card-reference secret (docs/qr-format.md §5). Does not rotate: every printed
                static code's card reference and revocation id derive from it.

In production the directory sits on an encrypted volume or is replaced by a cipher machine (HSM)
behind the same small interface; the private bytes never leave this module and ``crypto/``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..kit.clock import utcnow
from .sm2 import SM2PrivateKey, SM2PublicKey
from .sm4 import KEY_SIZE

MANIFEST = "keystore.json"
INDEX_KEY_SIZE = 32
KINDS = ("root", "qr", "sealing", "index", "qrref")


class KeyStoreError(Exception):
    pass


@dataclass
class KeyInfo:
    id: str
    kind: str
    created_at: str
    status: str = "active"  # active | retired (kept to verify / open old material) | withdrawn (trusted no more)
    not_after: str | None = None  # for qr keys: last moment a code signed by it may be accepted
    fingerprint: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.kind}-{self.id}.{'pem' if self.kind in ('root', 'qr') else 'key'}"


@dataclass
class _Manifest:
    version: int = 1
    keys: list[KeyInfo] = field(default_factory=list)


def _now() -> datetime:
    return utcnow().replace(microsecond=0)


def _new_key_id(kind: str) -> str:
    # Short ids: the QR key id travels inside every code, so it must be compact.
    return {"root": "R", "qr": "Q", "sealing": "S", "index": "I", "qrref": "C"}[kind] + secrets.token_hex(3)


class KeyStore:
    """Loads once, then hands out keys by kind and id. Thread-safe for reads."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._manifest = _Manifest()
        self._private: dict[str, SM2PrivateKey] = {}
        self._secret: dict[str, bytes] = {}
        if (self.directory / MANIFEST).exists():
            self._load()

    # -- creation and rotation -------------------------------------------------------------
    @classmethod
    def init(cls, directory: Path) -> "KeyStore":
        """Create every missing kind of key; never overwrites an existing one."""
        store = cls(directory)
        store.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(store.directory, 0o700)
        for kind in KINDS:
            if not store.infos(kind):
                store._add(kind)
        store._save()
        return store

    @property
    def exists(self) -> bool:
        return (self.directory / MANIFEST).exists()

    def rotate(self, kind: str, *, overlap: timedelta = timedelta(days=7)) -> KeyInfo:
        """Add a new active key of ``kind``; the previous active one is retired, never deleted.

        A retired sealing key still opens data sealed under it; a retired QR key stays in the trust
        list until ``overlap`` has passed, so codes it signed are accepted until they expire.
        """
        if kind not in ("qr", "sealing"):
            raise KeyStoreError(f"{kind} keys are not rotated in place")
        for info in self.infos(kind):
            if info.status == "active":
                info.status = "retired"
                if kind == "qr":
                    info.not_after = (_now() + overlap).isoformat()
        info = self._add(kind)
        self._save()
        return info

    def withdraw(self, key_id: str) -> KeyInfo:
        """Stop trusting a retired key for good (it leaked, or its static codes were reprinted).

        A withdrawn QR key leaves the trust list and verifies nothing. A withdrawn sealing key opens
        nothing: withdraw it only once nothing is sealed under it (``ehc keys reseal`` checks). The
        file stays, like every key the store had.
        """
        info = next((k for k in self.infos() if k.id == key_id and k.kind in ("qr", "sealing")), None)
        if info is None:
            raise KeyStoreError(f"no QR or sealing key {key_id} in the store")
        if info.status == "active":
            raise KeyStoreError(f"{key_id} is the active {info.kind} key: rotate it first (`ehc keys rotate {info.kind}`)")
        if info.status != "withdrawn":
            info.status = "withdrawn"
            self._save()
        return info

    def withdrawn(self, key_id: str) -> bool:
        return any(k.id == key_id and k.status == "withdrawn" for k in self._manifest.keys)

    def _add(self, kind: str) -> KeyInfo:
        info = KeyInfo(id=_new_key_id(kind), kind=kind, created_at=_now().isoformat())
        path = self.directory / info.filename
        if kind in ("root", "qr"):
            key = SM2PrivateKey.generate()
            material = key.to_pem()
            info.fingerprint = key.public_key.fingerprint
            self._private[info.id] = key
        else:
            secret = secrets.token_bytes(KEY_SIZE if kind == "sealing" else INDEX_KEY_SIZE)
            material = secret.hex().encode()
            self._secret[info.id] = secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(material)
        self._manifest.keys.append(info)
        return info

    def _save(self) -> None:
        tmp = self.directory / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"version": 1, "keys": [asdict(k) for k in self._manifest.keys]}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.directory / MANIFEST)

    def _load(self) -> None:
        raw = json.loads((self.directory / MANIFEST).read_text())
        self._manifest = _Manifest(version=raw["version"], keys=[KeyInfo(**k) for k in raw["keys"]])
        for info in self._manifest.keys:
            material = (self.directory / info.filename).read_bytes()
            if info.kind in ("root", "qr"):
                self._private[info.id] = SM2PrivateKey.from_pem(material)
            else:
                self._secret[info.id] = bytes.fromhex(material.decode().strip())

    # -- reading ---------------------------------------------------------------------------
    def infos(self, kind: str | None = None) -> list[KeyInfo]:
        return [k for k in self._manifest.keys if kind is None or k.kind == kind]

    def active(self, kind: str) -> KeyInfo:
        for info in reversed(self.infos(kind)):
            if info.status == "active":
                return info
        raise KeyStoreError(f"no active {kind} key in {self.directory}; run `ehc keys init`")

    def signing_key(self, key_id: str) -> SM2PrivateKey:
        try:
            return self._private[key_id]
        except KeyError:
            raise KeyStoreError(f"unknown signing key {key_id}") from None

    def public_key(self, key_id: str) -> SM2PublicKey:
        return self.signing_key(key_id).public_key

    def secret(self, key_id: str) -> bytes:
        try:
            return self._secret[key_id]
        except KeyError:
            raise KeyStoreError(f"unknown secret key {key_id}") from None
