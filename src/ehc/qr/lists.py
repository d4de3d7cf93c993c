"""The lists offline terminals verify against (docs/qr-format.md §11, §12), and how they are kept.

- The **trust list**: every QR issuing key still accepted, with the periods in which codes it signed
  are accepted, built from the key store's manifest and signed by the active root key.
- The **revocation list**: the revocation ids of static codes to refuse. Its rows (``qr_revocations``)
  are written by a card transition hook in the same transaction as the card's change: a card reported
  lost, cancelled or reissued adds its issue's id; a lost card recovered removes it again.

Both go out in the same envelope: ``{"payload": b64url(JSON), "kid": "R…", "signature": b64url(DER)}``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from ..cards import service as cards
from ..cards.service import CardChange, CardStatus
from ..crypto import KeyStore, KeyStoreError
from ..crypto.keystore import KeyInfo
from ..kit import dialect
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Invalid
from . import codec, repository
from .models import Revocation
from .online import ref_secret

TRUST_LIST_FORMAT = "ehc-trust-list"
REVOCATION_LIST_FORMAT = "ehc-revocation-list"
LIST_VERSION = 1
ALG = "SM2-SM3"
# When terminals should come back; they may keep using a list longer when offline (docs/terminal.md).
TRUST_LIST_NEXT_UPDATE = timedelta(days=1)
REVOCATIONS_NEXT_UPDATE = timedelta(hours=1)
# A server that loaded the key store before a rotation keeps signing with the old key until it is
# restarted (docs/operations.md); codes it signs in that hour must not be refused for their iat.
SIGNING_GRACE = timedelta(hours=1)
# How far a key's status has moved: the trust-list serial is the sum over all QR keys (see trust_list).
_STATUS_RANK = {"active": 1, "retired": 2}  # withdrawn counts 3


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_envelope(keys: KeyStore, payload: dict) -> dict:
    """The payload as compact JSON bytes, signed (DER, default user id) by the active root key."""
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    root = keys.active("root")
    return {"payload": b64url(data), "kid": root.id, "signature": b64url(keys.signing_key(root.id).sign(data))}


def root_key_info(keys: KeyStore) -> dict:
    """What a terminal pins: the root key's id, point and SM3 fingerprint (docs/terminal.md)."""
    root = keys.active("root")
    public = keys.public_key(root.id)
    return {"kid": root.id, "alg": ALG, "point": b64url(public.point), "fingerprint": public.fingerprint,
            "pem": public.to_pem().decode()}


# -- the trust list ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyEntry:
    kid: str
    point: bytes
    sign_from: datetime
    sign_until: datetime | None  # None: still signing
    accept_dynamic_until: datetime | None  # None: no end known yet (the active key)
    accept_static: bool

    def to_json(self) -> dict:
        return {"kid": self.kid, "alg": ALG, "point": b64url(self.point), "sign_from": _iso(self.sign_from),
                "sign_until": _iso(self.sign_until), "accept_dynamic_until": _iso(self.accept_dynamic_until),
                "accept_static": self.accept_static}


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def trust_list_entries(keys: KeyStore) -> list[KeyEntry]:
    """The accepted QR keys (§9.2): the active one, and every retired one not withdrawn.

    A retired key signed until the next key was created (rotation makes both in one step), plus the
    signing grace; dynamic codes it signed are accepted until its ``not_after``; static codes until it
    is withdrawn (then it leaves the list).
    """
    infos = keys.infos("qr")
    entries = []
    for i, info in enumerate(infos):
        if info.status not in _STATUS_RANK:
            continue  # withdrawn
        created = datetime.fromisoformat(info.created_at)
        if info.status == "active":
            sign_until = accept_dynamic = None
        else:
            accept_dynamic = _when(info.not_after)
            successor = infos[i + 1] if i + 1 < len(infos) else None
            retired = datetime.fromisoformat(successor.created_at) if successor else accept_dynamic
            sign_until = min(d for d in (retired + SIGNING_GRACE, accept_dynamic) if d is not None)
        entries.append(KeyEntry(info.id, keys.public_key(info.id).point, created, sign_until, accept_dynamic, True))
    return entries


def trust_list_serial(keys: KeyStore) -> int:
    """Grows exactly when the list changes, and never shrinks: every QR key counts 1 when created,
    1 more when retired, 1 more when withdrawn. The store never deletes a key and a status only moves
    forward (active → retired → withdrawn), so the sum only grows, and only with a change."""
    return sum(_STATUS_RANK.get(info.status, 3) for info in keys.infos("qr"))


def trust_list(keys: KeyStore, *, now: datetime | None = None) -> dict:
    now = (now or utcnow()).replace(microsecond=0)
    payload = {
        "format": TRUST_LIST_FORMAT, "version": LIST_VERSION, "serial": trust_list_serial(keys),
        "issued_at": _iso(now), "next_update": _iso(now + TRUST_LIST_NEXT_UPDATE),
        "keys": [entry.to_json() for entry in trust_list_entries(keys)],
    }
    return sign_envelope(keys, payload)


def withdraw_qr_key(keys: KeyStore, key_id: str) -> KeyInfo:
    """Take a retired QR key out of the trust list for good (``KeyStore.withdraw``): its codes are
    then refused everywhere; the trust list's serial grows with it."""
    if not any(info.id == key_id for info in keys.infos("qr")):
        raise KeyStoreError(f"no QR key {key_id} in the store")
    return keys.withdraw(key_id)


# -- the revocation list -------------------------------------------------------------------------
class RevocationSinceInvalid(Invalid):
    code = "revocation_since_invalid"


class RevocationSinceUnknown(Invalid):
    code = "revocation_since_unknown"


def parse_since(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise RevocationSinceInvalid("since must be a list serial: a whole number, 0 or more.")
    return int(value)


def _current_serial(ctx: Ctx) -> int:
    return repository.revocation_serial(ctx.session)


def _net_changes(ctx: Ctx, since: int) -> dict[str, str]:
    """rid -> its last action after ``since`` (add or remove)."""
    return repository.revocation_changes(ctx.session, since)


def revoked_rids(ctx: Ctx) -> list[str]:
    return sorted(rid for rid, action in _net_changes(ctx, 0).items() if action == "add")


def revocation_list(ctx: Ctx, since: int | None = None, *, now: datetime | None = None) -> dict:
    """The whole list, or (``since``) only what changed after that serial, signed by the root key."""
    now = (now or utcnow()).replace(microsecond=0)
    serial = _current_serial(ctx)
    payload: dict = {"format": REVOCATION_LIST_FORMAT, "version": LIST_VERSION, "serial": serial,
                     "issued_at": _iso(now), "next_update": _iso(now + REVOCATIONS_NEXT_UPDATE)}
    if since is None:
        payload.update(full=True, rids=revoked_rids(ctx))
    else:
        if since > serial:
            raise RevocationSinceUnknown(f"No revocation list serial {since} was ever published (the latest is "
                                         f"{serial}): fetch the whole list again.", serial=serial)
        changes = _net_changes(ctx, since)
        payload.update(full=False, since=since,
                       added=sorted(r for r, a in changes.items() if a == "add"),
                       removed=sorted(r for r, a in changes.items() if a == "remove"))
    return sign_envelope(ctx.vault.keys, payload)


def _listed(ctx: Ctx, rid: str) -> bool:
    return repository.last_revocation_action(ctx.session, rid) == "add"


def _serialise_writers(ctx: Ctx) -> None:
    """Serials must be handed out in commit order, or a terminal that fetched serial N could miss a
    row N-1 committed after it. PostgreSQL: writers take the table's lock until they commit (readers
    are not blocked; card transitions are rare). SQLite already runs one writer at a time."""
    dialect.lock_table(ctx.session, "qr_revocations", "SHARE ROW EXCLUSIVE")


def _change(ctx: Ctx, rid: str, action: str, reason: str) -> None:
    _serialise_writers(ctx)
    if _listed(ctx, rid) == (action == "add"):
        return  # already in that state: a lost card cancelled or reissued is listed once
    ctx.session.add(Revocation(rid=rid, action=action, reason=reason, at=utcnow()))
    ctx.session.flush()


def _rid(ctx: Ctx, ehc_id: str, sequence: int) -> str:
    return codec.revocation_id(ref_secret(ctx), ehc_id, sequence).hex()


def revoke_on_transition(ctx: Ctx, change: CardChange) -> None:
    """Keep the revocation list in step with the card's life (docs/qr-format.md §12)."""
    if change.action == "report_lost":
        _change(ctx, _rid(ctx, change.ehc_id, change.sequence), "add", "lost")
    elif change.action == "cancel" and change.from_status in (CardStatus.NORMAL, CardStatus.LOST):
        _change(ctx, _rid(ctx, change.ehc_id, change.sequence), "add", "cancelled")
    elif change.action == "reissue":
        _change(ctx, _rid(ctx, change.ehc_id, change.sequence_before), "add", "reissued")
    elif change.action == "recover":
        _change(ctx, _rid(ctx, change.ehc_id, change.sequence), "remove", "recovered")
