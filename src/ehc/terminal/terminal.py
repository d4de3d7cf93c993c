"""A scanner, kiosk or hospital system that verifies codes with no network (docs/terminal.md).

Its cache directory holds:

- ``root.json``        the pinned root public key (PEM, fingerprint): the one thing it trusts;
- ``trust-list.json``  the last trust-list envelope as received (re-checked at every load);
- ``revocations.json`` the revocation ids of static codes, with the list's serial;
- ``queue.jsonl``      card uses accepted offline, waiting for upload (one JSON object a line);
- ``outbox.jsonl``     uses an upload has taken from the queue and not yet seen answered;
- ``seen.jsonl``       dynamic codes already accepted here and since uploaded, until they expire.

``sync`` needs the network; ``verify`` never touches it; ``upload`` sends the queue in batches.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import httpx

from ..crypto import SM2PublicKey
from ..kit.clock import utcnow
from ..qr import codec
from ..qr.codec.codes import check_use_codes, online_only
from .lists import (
    REVOCATION_LIST_FORMAT,
    TRUST_LIST_FORMAT,
    ListSerialLower,
    Revocations,
    TerminalProblem,
    TrustList,
    b64url_decode,
    open_envelope,
)

TRUST_LIST_PATH = "/.well-known/ehc/trust-list"
REVOCATIONS_PATH = "/.well-known/ehc/revocations"
ROOT_KEY_PATH = "/.well-known/ehc/root-key"
BATCH_PATH = "/api/v1/qr/uses/batch"
BATCH_MAX = 500
SKEW = codec.DEFAULT_SKEW  # seconds; offline terminals tolerate this much clock difference (§9 step 8)
# How long a terminal keeps trusting its cached lists with no sync: after that it refuses to verify
# rather than accept codes of a key withdrawn (or a card revoked) in the meantime.
MAX_LIST_AGE = timedelta(days=7)
# `ehc verify` exits with one number per refusal, so scripts can branch on it (docs/terminal.md).
EXIT_CODES = {
    "qr_malformed": 10, "qr_version_unsupported": 11, "qr_payment_mismatch": 12, "qr_key_unknown": 13,
    "qr_signature_invalid": 14, "qr_not_yet_valid": 15, "qr_expired": 16, "qr_revoked": 17, "qr_replayed": 18,
    "qr_image_unreadable": 19,
}
EXIT_TERMINAL = 20  # the terminal cannot verify: no or stale lists, a list refused, no root key pinned
EXIT_OTHER = 2  # usage, network, or a refusal of another kind (e.g. card_not_active online)


def exit_code(problem_code: str, *, terminal: bool = False) -> int:
    return EXIT_CODES.get(problem_code, EXIT_TERMINAL if terminal else EXIT_OTHER)


_USE_FIELDS = ("code", "scene", "channel", "terminal_id", "department", "at")


# -- refusals a terminal adds to the codec's ------------------------------------------------------
QRRevoked = codec.QRRevoked
QRReplayed = codec.QRReplayed


class OnlineOnly(TerminalProblem):
    code = "second_factor_online_only"


class RootKeyMissing(TerminalProblem):
    code = "root_key_missing"


class RootKeyMismatch(TerminalProblem):
    code = "root_key_mismatch"


class TrustListMissing(TerminalProblem):
    code = "trust_list_missing"


class RevocationListMissing(TerminalProblem):
    code = "revocation_list_missing"


class ListStale(TerminalProblem):
    code = "list_stale"


class SyncFailed(TerminalProblem):
    code = "sync_failed"


@dataclass(frozen=True)
class Accepted:
    """A code this terminal accepted offline. The card behind it stays unknown here (§5)."""

    code_type: codec.CodeType
    key_id: str
    issued_at: datetime
    expires_at: datetime | None
    nonce: str  # hex: a dynamic code's random nonce, a static code's revocation id
    two_in_one: bool
    queued: bool


@dataclass(frozen=True)
class SyncReport:
    trust_serial: int
    keys: list[str]
    revocation_serial: int
    revoked: int


@dataclass(frozen=True)
class UploadReport:
    sent: int
    outcomes: dict[str, int]
    left: int


def _utc(moment: datetime | None) -> datetime:
    return moment or utcnow()


class Terminal:
    """One terminal's offline verifier. Not thread-safe: one per scanning loop."""

    def __init__(self, cache_dir: Path | str, *, terminal_id: str | None = None, department: str | None = None,
                 skew: int = SKEW, max_list_age: timedelta = MAX_LIST_AGE) -> None:
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.terminal_id = terminal_id
        self.department = department
        self.skew = skew
        self.max_list_age = max_list_age
        self.root: SM2PublicKey | None = None
        self.trust: TrustList | None = None
        self.revocations: Revocations | None = None
        self._seen: dict[tuple[str, str], int] = {}
        self._prune_above = 10_000  # seen codes kept in memory before the expired ones are dropped
        self._lock_fd = os.open(self.dir / "queue.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._queue_fd = os.open(self.dir / "queue.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._load()

    def close(self) -> None:
        os.close(self._queue_fd)
        os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files -----------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        return self.dir / name

    def _read_json(self, name: str) -> dict | None:
        path = self._path(name)
        return json.loads(path.read_text()) if path.exists() else None

    def _write_json(self, name: str, data: dict) -> None:
        tmp = self._path(name + ".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False))
        tmp.replace(self._path(name))

    def _lines(self, name: str) -> list[dict]:
        path = self._path(name)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _write_lines(self, name: str, rows: Iterable[dict]) -> None:
        tmp = self._path(name + ".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        tmp.replace(self._path(name))

    def _load(self) -> None:
        root = self._read_json("root.json")
        if root is not None:
            self.root = SM2PublicKey.from_pem(root["pem"])
            trust = self._read_json("trust-list.json")
            if trust is not None:  # re-checked: the file is only as good as its signature
                self.trust = TrustList.from_payload(open_envelope(trust, self.root, TRUST_LIST_FORMAT))
        revocations = self._read_json("revocations.json")
        if revocations is not None:
            self.revocations = Revocations.from_json(revocations)
        now = int(_utc(None).timestamp())
        for name in ("seen.jsonl", "outbox.jsonl", "queue.jsonl"):
            for row in self._lines(name):
                if (row.get("until") or 0) > now:
                    self._seen[(row["kid"], row["nonce"])] = row["until"]
        self._write_lines("seen.jsonl", ({"kid": k, "nonce": n, "until": u} for (k, n), u in self._seen.items()))

    # -- pinning and syncing (network) -----------------------------------------------------------
    def pin_root(self, pem: bytes | str) -> SM2PublicKey:
        """Trust this root key from now on (from a file handed over out of band)."""
        key = SM2PublicKey.from_pem(pem)
        if self.root is not None and self.root != key:
            raise RootKeyMismatch("This cache already pins another root key; use a fresh cache directory.")
        self.root = key
        self._write_json("root.json", {"pem": key.to_pem().decode(), "fingerprint": key.fingerprint})
        return key

    def pin_fingerprint(self, base_url: str, fingerprint: str, *, http: httpx.Client | None = None) -> SM2PublicKey:
        """Fetch the platform's root key and trust it only if its SM3 fingerprint is the one given."""
        answer = self._get(http, base_url, ROOT_KEY_PATH)
        key = SM2PublicKey.from_point(b64url_decode(answer["point"]))
        if key.fingerprint != fingerprint.strip().lower():
            raise RootKeyMismatch(f"The platform's root key has fingerprint {key.fingerprint}, not the pinned one.")
        return self.pin_root(key.to_pem())

    def sync(self, base_url: str, *, http: httpx.Client | None = None) -> SyncReport:
        """Fetch the trust list and the revocation changes since the cached serial; both checked."""
        if self.root is None:
            raise RootKeyMissing("Pin the platform's root key first (--root-key or --root-fingerprint).")
        envelope = self._get(http, base_url, TRUST_LIST_PATH)
        trust = TrustList.from_payload(open_envelope(envelope, self.root, TRUST_LIST_FORMAT))
        if self.trust is not None and (trust.serial < self.trust.serial or trust.issued_at < self.trust.issued_at):
            raise ListSerialLower(f"The trust list went back from serial {self.trust.serial} to {trust.serial}: "
                                  "refused.")
        revocations = Revocations(**vars(self.revocations)) if self.revocations else Revocations()
        since = f"?since={revocations.serial}" if self.revocations is not None else ""
        revocations.apply(open_envelope(self._get(http, base_url, REVOCATIONS_PATH + since), self.root,
                                        REVOCATION_LIST_FORMAT))
        self._write_json("trust-list.json", envelope)
        self._write_json("revocations.json", revocations.to_json())
        self.trust, self.revocations = trust, revocations
        return SyncReport(trust.serial, sorted(trust.keys), revocations.serial, len(revocations.rids))

    @staticmethod
    def _get(http: httpx.Client | None, base_url: str, path: str) -> dict:
        client = http or httpx.Client(timeout=10.0)
        try:
            answer = client.get(base_url.rstrip("/") + path)
        except httpx.HTTPError as exc:
            raise SyncFailed(f"Could not reach {base_url}: {exc}") from None
        finally:
            if http is None:
                client.close()
        if not answer.is_success:
            try:
                body = answer.json()
            except ValueError:
                body = {}
            raise SyncFailed(f"{path}: {answer.status_code} {body.get('code', '')} {body.get('detail', '')}".strip(),
                             upstream_code=body.get("code"))
        return answer.json()

    # -- verifying (no network) ------------------------------------------------------------------
    def verify(self, text: str, *, scene: str, channel: str, now: datetime | None = None,
               record: bool = True) -> Accepted:
        """§9 steps 1-9 against the cached lists, then this terminal's own replay check; an accepted
        use goes to the upload queue. Raises a ``QRRejected`` (the code's fault) or ``TerminalProblem``."""
        check_use_codes(scene, channel)
        now = _utc(now)
        trust = self._fresh_trust(now)
        split = codec.split(text.strip() if isinstance(text, str) else text)
        code = split.code
        payload = codec.verify(code, trust.lookup_for(code.payload, now), now=now, skew=self.skew)
        if online_only(payload.type, scene):
            raise OnlineOnly("A printed code at a payment or report step needs the holder's PIN or SMS code, "
                             "which only the platform checks: verify it online.")
        nonce = payload.nonce.hex()
        until = None
        if payload.type is codec.CodeType.STATIC:
            if nonce in self._fresh_revocations(now).rids:
                raise QRRevoked("This printed code has been revoked (card lost, cancelled or reissued).")
        else:
            key = (payload.key_id, nonce)
            if self._seen.get(key, 0) > int(now.timestamp()):
                raise QRReplayed("This code has been used at this terminal already: show a fresh one.")
            until = payload.expires_at + self.skew
            self._seen[key] = until
            self._prune_seen(now)
        # A use is recorded against a terminal the institution registered: one with no id is not queued
        # (the platform would only refuse it); ``Accepted.queued`` says so.
        record = record and bool(self.terminal_id)
        if record:
            self._enqueue({"code": text.strip(), "scene": scene, "channel": channel, "terminal_id": self.terminal_id,
                           "department": self.department, "at": now.isoformat(), "kid": payload.key_id,
                           "nonce": nonce, "until": until})
        elif until:  # not queued: still refused here as a replay until it expires, across restarts too
            self._remember_seen([{"kid": payload.key_id, "nonce": nonce, "until": until}])
        expires = payload.expires_at
        return Accepted(payload.type, payload.key_id, datetime.fromtimestamp(payload.issued_at, UTC),
                        None if expires is None else datetime.fromtimestamp(expires, UTC), nonce,
                        split.payment_template is not None, record)

    def _prune_seen(self, now: datetime) -> None:
        if len(self._seen) > self._prune_above:
            t = int(now.timestamp())
            self._seen = {k: u for k, u in self._seen.items() if u > t}
            self._prune_above = 2 * len(self._seen) + 10_000

    def _fresh_trust(self, now: datetime) -> TrustList:
        if self.trust is None:
            raise TrustListMissing("No trust list cached: run `ehc terminal sync` once with network.")
        if now - self.trust.issued_at > self.max_list_age:
            raise ListStale(f"The trust list is from {self.trust.issued_at:%Y-%m-%d %H:%M}Z, older than "
                            f"{self.max_list_age.days} days: sync before verifying.")
        return self.trust

    def _fresh_revocations(self, now: datetime) -> Revocations:
        if self.revocations is None or self.revocations.issued_at is None:
            raise RevocationListMissing("No revocation list cached: a printed code cannot be checked.")
        if now - self.revocations.issued_at > self.max_list_age:
            raise ListStale("The revocation list is too old to check printed codes: sync first.")
        return self.revocations

    # -- the upload queue ------------------------------------------------------------------------
    def _enqueue(self, row: dict) -> None:
        # One write on a file kept open in append mode: the upload empties the queue in place (under
        # the same lock) rather than replacing it, so this descriptor never points at a stale file.
        line = (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            os.write(self._queue_fd, line)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def pending(self) -> int:
        return len(self._lines("outbox.jsonl")) + len(self._lines("queue.jsonl"))

    def upload(self, client: object, *, batch_size: int = BATCH_MAX) -> UploadReport:
        """Send queued uses with a signed ``ehc.client.EhcClient`` in batches of at most 500; a use the
        platform answered (recorded, duplicate, replay or rejected) leaves the queue. A failed batch
        stays in ``outbox.jsonl`` for the next upload; the platform deduplicates a resent use."""
        batch_size = max(1, min(batch_size, BATCH_MAX))
        self._take_queue()
        outbox = self._lines("outbox.jsonl")
        outcomes: dict[str, int] = {}
        sent = 0
        while outbox:
            batch = outbox[:batch_size]
            answer = client.request("POST", BATCH_PATH,  # type: ignore[attr-defined]
                                    json={"uses": [{k: row.get(k) for k in _USE_FIELDS} for row in batch]})
            results = answer.get("items", answer.get("results", []))  # the endpoint's name for them: items
            answered = {r["index"] for r in results}
            for r in results:
                outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
            self._remember_seen(row for i, row in enumerate(batch) if i in answered)
            outbox = [row for i, row in enumerate(batch) if i not in answered] + outbox[batch_size:]
            self._write_lines("outbox.jsonl", outbox)
            sent += len(answered)
            if len(answered) < len(batch):
                break  # the platform skipped some: keep them, do not loop on them
        return UploadReport(sent, outcomes, len(outbox) + len(self._lines("queue.jsonl")))

    def _take_queue(self) -> None:
        """Move the queue to the outbox under the lock, so scanning goes on while the upload runs."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            queue = self._path("queue.jsonl")
            with open(self._path("outbox.jsonl"), "a") as out:
                out.write(queue.read_text())
            os.truncate(queue, 0)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _remember_seen(self, rows: Iterable[dict]) -> None:
        """Uploaded dynamic codes are still refused here as replays until they expire."""
        with open(self._path("seen.jsonl"), "a") as fh:
            for row in rows:
                if row.get("until"):
                    fh.write(json.dumps({"kid": row["kid"], "nonce": row["nonce"], "until": row["until"]}) + "\n")
