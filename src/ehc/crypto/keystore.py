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

Every process sees a change without a restart: the store remembers which manifest it loaded (its
inode, size and modification time; a change replaces the file, so the inode changes) and looks at
the file again (one ``stat``, about a microsecond) before each answer to "which key is active" or
"which keys are there", and when asked for a key id it does not know. So after ``ehc keys rotate``
in another process, the next seal uses the new key and a value sealed under it opens here. Changes
are made under an exclusive lock on ``keystore.lock`` and re-read the manifest first, so two
processes changing the store at once do not lose each other's change.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..kit.clock import utcnow
from .sm2 import SM2PrivateKey, SM2PublicKey
from .sm4 import KEY_SIZE

MANIFEST = "keystore.json"
LOCK = "keystore.lock"
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


@dataclass(frozen=True)
class _Loaded:
    """One reading of the store, swapped whole so a reader never sees half of a change."""

    manifest: _Manifest
    private: dict[str, SM2PrivateKey]
    secret: dict[str, bytes]
    stamp: tuple[int, int, int] | None  # (inode, size, mtime ns) of the manifest read; None: none yet


_EMPTY = _Loaded(_Manifest(), {}, {}, None)


@dataclass
class _Draft:
    """A change being made: the manifest to save and every key it names."""

    manifest: _Manifest
    private: dict[str, SM2PrivateKey]
    secret: dict[str, bytes]


class KeyStore:
    """Hands out keys by kind and id, following changes other processes make. Thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._state = _EMPTY
        self._reload_lock = threading.Lock()
        self.refresh()

    # -- following other processes' changes --------------------------------------------------
    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.directory / MANIFEST)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def refresh(self) -> bool:
        """Read the store again if its manifest changed since it was read; whether it did."""
        stamp = self._stamp()
        if stamp == self._state.stamp:
            return False
        with self._reload_lock:
            if self._stamp() == self._state.stamp:
                return False
            self._state = self._read()
        return True

    def _read(self) -> _Loaded:
        """The store as it stands on disk; keys already loaded are reused (their files never change)."""
        while True:
            stamp = self._stamp()
            if stamp is None:
                return _Loaded(_Manifest(), {}, {}, None)
            raw = json.loads((self.directory / MANIFEST).read_text())
            manifest = _Manifest(version=raw["version"], keys=[KeyInfo(**k) for k in raw["keys"]])
            private, secret = {}, {}
            for info in manifest.keys:
                if info.id in self._state.private:
                    private[info.id] = self._state.private[info.id]
                elif info.id in self._state.secret:
                    secret[info.id] = self._state.secret[info.id]
                else:
                    material = (self.directory / info.filename).read_bytes()
                    if info.kind in ("root", "qr"):
                        private[info.id] = SM2PrivateKey.from_pem(material)
                    else:
                        secret[info.id] = bytes.fromhex(material.decode().strip())
            if self._stamp() == stamp:  # not replaced while it was being read
                return _Loaded(manifest, private, secret, stamp)

    @contextmanager
    def _changing(self) -> Iterator[_Draft]:
        """The manifest as it stands on disk, to change and save, with every other process's changes
        kept out until this one is saved (an exclusive lock on ``keystore.lock``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._reload_lock:
                self._state = self._read()
                state = self._state
                draft = _Draft(_Manifest(state.manifest.version, [KeyInfo(**asdict(k)) for k in state.manifest.keys]),
                               dict(state.private), dict(state.secret))
                yield draft
                self._save(draft.manifest)
                self._state = _Loaded(draft.manifest, draft.private, draft.secret, self._stamp())
        finally:
            os.close(fd)  # releases the lock

    # -- creation and rotation -------------------------------------------------------------
    @classmethod
    def init(cls, directory: Path) -> "KeyStore":
        """Create every missing kind of key; never overwrites an existing one."""
        store = cls(directory)
        store.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(store.directory, 0o700)
        with store._changing() as draft:
            for kind in KINDS:
                if not any(k.kind == kind for k in draft.manifest.keys):
                    store._add(draft, kind)
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
        with self._changing() as draft:
            for info in draft.manifest.keys:
                if info.kind == kind and info.status == "active":
                    info.status = "retired"
                    if kind == "qr":
                        info.not_after = (_now() + overlap).isoformat()
            return self._add(draft, kind)

    def withdraw(self, key_id: str) -> KeyInfo:
        """Stop trusting a retired key for good (it leaked, or its static codes were reprinted).

        A withdrawn QR key leaves the trust list and verifies nothing. A withdrawn sealing key opens
        nothing: withdraw it only once nothing is sealed under it (``ehc keys reseal`` checks). The
        file stays, like every key the store had. Every process follows at its next use of the store.
        """
        with self._changing() as draft:
            info = next((k for k in draft.manifest.keys if k.id == key_id and k.kind in ("qr", "sealing")), None)
            if info is None:
                raise KeyStoreError(f"no QR or sealing key {key_id} in the store")
            if info.status == "active":
                raise KeyStoreError(f"{key_id} is the active {info.kind} key: rotate it first "
                                    f"(`ehc keys rotate {info.kind}`)")
            info.status = "withdrawn"
            return info

    def withdrawn(self, key_id: str) -> bool:
        return any(k.id == key_id and k.status == "withdrawn" for k in self.infos())

    def _add(self, draft: _Draft, kind: str) -> KeyInfo:
        info = KeyInfo(id=_new_key_id(kind), kind=kind, created_at=_now().isoformat())
        path = self.directory / info.filename
        if kind in ("root", "qr"):
            key = SM2PrivateKey.generate()
            material = key.to_pem()
            info.fingerprint = key.public_key.fingerprint
            draft.private[info.id] = key
        else:
            value = secrets.token_bytes(KEY_SIZE if kind == "sealing" else INDEX_KEY_SIZE)
            material = value.hex().encode()
            draft.secret[info.id] = value
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(material)
            fh.flush()
            os.fsync(fh.fileno())  # the key is on disk before the manifest that names it
        draft.manifest.keys.append(info)
        return info

    def _save(self, manifest: _Manifest) -> None:
        tmp = self.directory / (MANIFEST + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps({"version": 1, "keys": [asdict(k) for k in manifest.keys]}, indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        tmp.replace(self.directory / MANIFEST)  # atomic: a reader sees the old manifest or the new one

    # -- reading ---------------------------------------------------------------------------
    def infos(self, kind: str | None = None) -> list[KeyInfo]:
        self.refresh()
        return [k for k in self._state.manifest.keys if kind is None or k.kind == kind]

    def active(self, kind: str) -> KeyInfo:
        for info in reversed(self.infos(kind)):
            if info.status == "active":
                return info
        raise KeyStoreError(f"no active {kind} key in {self.directory}; run `ehc keys init`")

    def signing_key(self, key_id: str) -> SM2PrivateKey:
        key = self._state.private.get(key_id)
        if key is None and self.refresh():  # made by another process since this one last looked
            key = self._state.private.get(key_id)
        if key is None:
            raise KeyStoreError(f"unknown signing key {key_id}")
        return key

    def public_key(self, key_id: str) -> SM2PublicKey:
        return self.signing_key(key_id).public_key

    def secret(self, key_id: str) -> bytes:
        value = self._state.secret.get(key_id)
        if value is None and self.refresh():
            value = self._state.secret.get(key_id)
        if value is None:
            raise KeyStoreError(f"unknown secret key {key_id}")
        return value
