"""Institution apps: registering them and their keys, and authenticating their signed requests.

Authentication checks a request in a fixed order and stops at the first failure, each with its own
code: the signing headers' form (``signature_headers_missing``), the app (``app_unknown``), the key
(``key_unknown``, ``key_revoked``), the clock (``timestamp_skew``), the signature
(``signature_invalid``) and last the nonce (``nonce_replayed``). The nonce comes last so that only
the holder of a registered private key can use up a nonce; and it is the only thing written, and
only for a request that passed everything else.

The app and key rows are cached in each process (:class:`_KeyCache`), under the generation of apps'
keys that every change here replaces (:func:`_keys_changed`). The nonce claim reports the current
generation in the same round trip (``replay.Claim``); a row cached under another one is read again
before the request is let in, so a revocation, from the API, a page or the CLI of another process,
is refused by every process from its next request on, never after a delay.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ..kit.roles import HOSPITAL_SYSTEM
from ..crypto import SM2PublicKey
from ..institutions import service as institutions
from ..kit.clock import utcnow
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.errors import Conflict, Invalid, NotFound, Problem, Unauthorized, field_error
from . import repository, signing
from .models import AppKey, InstitutionApp, KeyStatus

# The canonical request and its SM2 signature (``signing.py``), which the caller identification and
# ``ehc.client`` use: re-exported here, the domain's public face.
from .signing import HEADER_CHANNEL, HEADER_DEPARTMENT, HEADER_OPERATOR, is_signed, sign

# Where signed requests' nonces are claimed (``replay.py``): Redis for every worker, or the database.
from .replay import Claim, DatabaseNonces, NonceStore, SharedNonces, announce_keys_changed

_DATABASE_NONCES = DatabaseNonces()

MAX_ACTIVE_KEYS = 5  # enough to rotate (old and new side by side) with room for a staged spare


# -- managing apps and keys ------------------------------------------------------------------------

def _manager_name(ctx: Ctx) -> str | None:
    return ctx.actor.operator or ctx.actor.id


def _managed_institution(ctx: Ctx, institution_id: str) -> str:
    """The institution's id if the actor manages it (``institutions.service.may_manage``: its admin, a platform
    admin, the CLI); 404 otherwise, whether or not it exists, as the institution registry answers."""
    if not (institutions.may_manage(ctx.actor, institution_id)
            and institutions.find_institution(ctx.session, institution_id) is not None):
        raise NotFound("No such institution.", code="institution_not_found")
    return institution_id


def _keys_changed(ctx: Ctx) -> None:
    """Every process must read apps and keys again: replace the generation in this transaction (the
    database's, which the embedded fallback's nonce claim reads) and, once it is committed, in Redis
    (which the workers' claims read). Call it with every change of an app or its keys."""
    token = secrets.token_hex(16)
    repository.replace_keys_generation(ctx.session, token)
    settings = ctx.settings
    if settings is not None and settings.redis_url:
        url, prefix = settings.redis_url, settings.redis_prefix
        announce_keys_changed(url, prefix)  # now: a Redis that does not answer refuses the change (503)
        # And after the commit, which is what counts: announced only before it, a worker could read
        # the old row again under the new generation and keep it.
        event.listen(ctx.session, "after_commit",
                     lambda _session: announce_keys_changed(url, prefix, committed=True), once=True)


def create_app(ctx: Ctx, *, name: str, institution_id: str | None = None) -> InstitutionApp:
    institution_id = institution_id or ctx.actor.institution_id
    if not institution_id:
        raise Invalid("Say which institution the app belongs to.", code="institution_required",
                      errors=[field_error("institution_id", "required", "An app belongs to an institution.")])
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise Invalid("An app's name is 1 to 100 characters.", code="app_name_invalid",
                      errors=[field_error("name", "app_name_invalid", "1 to 100 characters.")])
    _managed_institution(ctx, institution_id)
    app = InstitutionApp(id=secrets.token_hex(8), institution_id=institution_id, name=name,
                         created_by=_manager_name(ctx), created_at=utcnow())
    ctx.session.add(app)
    ctx.session.flush()
    _keys_changed(ctx)
    return app


def list_apps(ctx: Ctx, institution_id: str | None = None) -> list[InstitutionApp]:
    """Apps of one institution the actor manages; without ``institution_id``, an institution admin's
    own, or every institution's for those who manage them all."""
    institution_id = institution_id or (None if institutions.everywhere(ctx.actor) else ctx.actor.institution_id)
    if institution_id is not None:
        _managed_institution(ctx, institution_id)
    elif not institutions.everywhere(ctx.actor):
        return []
    return repository.apps(ctx.session, institution_id)


def get_app(ctx: Ctx, app_id: str) -> InstitutionApp:
    """The app, if the actor manages its institution; 404 otherwise."""
    app = repository.app(ctx.session, app_id)
    if app is None or not institutions.may_manage(ctx.actor, app.institution_id):
        raise NotFound(f"No app {app_id}.", code="app_not_found")
    return app


def keys_of(ctx: Ctx, app: InstitutionApp) -> list[AppKey]:
    return repository.keys(ctx.session, app.id)


def key_id_for(public_key: SM2PublicKey) -> str:
    return public_key.fingerprint[:16]


def add_key(ctx: Ctx, app_id: str, public_key_pem: str) -> AppKey:
    """Register an SM2 public key (PEM, SubjectPublicKeyInfo). To rotate: add the new key, move the
    system over to it, then revoke the old one; both work in between."""
    app = get_app(ctx, app_id)
    try:
        public_key = SM2PublicKey.from_pem(public_key_pem.strip().encode())
    except Exception:
        message = ("Not an SM2 public key in PEM form (-----BEGIN PUBLIC KEY-----). Make one with "
                   "`openssl genpkey -algorithm SM2 -out app-key.pem` and `openssl pkey -in app-key.pem -pubout`.")
        raise Invalid(message, code="public_key_invalid",
                      errors=[field_error("public_key_pem", "public_key_invalid", message)]) from None
    if repository.fingerprint_registered(ctx.session, public_key.fingerprint):
        raise Conflict("This public key is already registered (keys are never reused, even after revocation).",
                       code="key_already_registered")
    if repository.active_keys(ctx.session, app.id) >= MAX_ACTIVE_KEYS:
        raise Conflict(f"An app has at most {MAX_ACTIVE_KEYS} active keys; revoke one first.", code="too_many_keys")
    key = AppKey(app_id=app.id, key_id=key_id_for(public_key), fingerprint=public_key.fingerprint,
                 public_key_pem=public_key.to_pem().decode("ascii"), status=KeyStatus.ACTIVE.value,
                 created_by=_manager_name(ctx), created_at=utcnow())
    ctx.session.add(key)
    ctx.session.flush()
    _keys_changed(ctx)
    return key


def revoke_key(ctx: Ctx, app_id: str, key_id: str) -> AppKey:
    """Stop accepting a key, from the next request on. Final; revoking twice is a no-op."""
    app = get_app(ctx, app_id)
    key = repository.key(ctx.session, app.id, key_id)
    if key is None:
        raise NotFound(f"App {app_id} has no key {key_id}.", code="key_not_found")
    if key.status != KeyStatus.REVOKED.value:
        key.status = KeyStatus.REVOKED.value
        key.revoked_at = utcnow()
        key.revoked_by = _manager_name(ctx)
        ctx.session.flush()
    _keys_changed(ctx)  # also when revoked already: repeating a revocation announces it again
    return key


# -- authenticating signed requests ----------------------------------------------------------------

@dataclass(frozen=True)
class SignedRequest:
    """What authentication needs of an HTTP request, and nothing framework-specific."""

    method: str
    path: str  # percent-encoded, as sent
    query: str  # raw query string, without "?"
    body: bytes
    headers: Mapping[str, str]  # case-insensitive lookup


def _reject(code: str, detail: str, **extra) -> Unauthorized:  # noqa: ANN003
    return Unauthorized(detail, code=code, title="Signed request refused", **extra)


@lru_cache(maxsize=4096)
def _public_key(pem: str) -> SM2PublicKey:
    # Parsing PEM costs more than verifying; a key's PEM never changes, so parse each once.
    return SM2PublicKey.from_pem(pem.encode())


class _KeyCache:
    """(institution id, key status, key PEM) of an app's key, as read after a claim that saw the
    generation it is kept under; in this process. Only keys that once let a request in are kept (a
    claim needs a good signature), so strangers' made-up ids cannot fill it."""

    LIMIT = 10_000  # apps' keys of a province, with room; past it the cache starts again

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[str, tuple]] = {}
        self._lock = threading.Lock()

    def get(self, app_id: str, key_id: str) -> tuple[str, tuple] | None:
        return self._rows.get((app_id, key_id))

    def put(self, app_id: str, key_id: str, generation: str, row: tuple) -> None:
        with self._lock:
            if len(self._rows) >= self.LIMIT:
                self._rows.clear()
            self._rows[(app_id, key_id)] = (generation, row)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


_KEYS = _KeyCache()


def _usable_key(row: tuple | None, app_id: str, key_id: str) -> tuple[str, str]:
    """(institution id, PEM) of an active key, or the refusal that says what is wrong."""
    if row is None:
        raise _reject("app_unknown", f"No app {app_id} is registered on the platform.")
    institution_id, status, pem = row
    if status is None:
        raise _reject("key_unknown", f"App {app_id} has no key {key_id}.")
    if status != KeyStatus.ACTIVE.value:
        raise _reject("key_revoked", f"Key {key_id} of app {app_id} has been revoked.")
    return institution_id, pem


# The platform's own channels (its operators' command line, its registry migrations): a hospital's system
# cannot claim to be them, so what it does is never shown to residents as the platform's doing.
_PLATFORM_CHANNELS = frozenset({Channel.CONSOLE, Channel.BATCH_IMPORT})


def _operator_and_channel(headers: Mapping[str, str]) -> tuple[str | None, Channel]:
    operator = headers.get(signing.HEADER_OPERATOR) or None
    if operator is not None and (len(operator) > signing.MAX_OPERATOR_LENGTH or not operator.isprintable()):
        raise Problem(f"{signing.HEADER_OPERATOR} is at most {signing.MAX_OPERATOR_LENGTH} printable characters.",
                      code="operator_invalid", status=400)
    try:
        channel = Channel(headers.get(signing.HEADER_CHANNEL) or Channel.HOSPITAL_SYSTEM.value)
    except ValueError:
        channel = Channel.HOSPITAL_SYSTEM
    if channel in _PLATFORM_CHANNELS:  # residents would be told the platform's own staff acted
        channel = Channel.HOSPITAL_SYSTEM
    return operator, channel


def admit(engine: Engine, request: SignedRequest, before_claim: Callable[[Actor], None] | None = None,
          nonces: NonceStore | None = None, session: Session | None = None) -> Actor:
    """Authenticate a signed request, its nonce claimed in ``nonces`` (the database's ``used_nonces``
    by default, in a unit of work of its own) before the request's work begins: a request that was
    let in can never be played again, even if its work then fails. ``session``: the request's own,
    which a store that claims outside the database reads the app and key through."""
    nonces = nonces or _DATABASE_NONCES
    with nonces.checking(engine, session) as connection:
        return authenticate(connection, request, before_claim=before_claim, nonces=nonces)


def authenticate(connection: Connection | Session, request: SignedRequest, now: datetime | None = None, *,
                 before_claim: Callable[[Actor], None] | None = None, nonces: NonceStore | None = None) -> Actor:
    """The machine actor behind a signed request, or a :class:`Problem` saying what is wrong.

    ``before_claim`` may still refuse a correctly signed request (the app's rate limit) before its
    nonce is claimed, so that refusal too leaves nothing behind. On success the nonce is claimed in
    ``connection``'s transaction (see :func:`admit`).
    """
    now = now or utcnow()
    try:
        signed = signing.parse_headers(request.headers)
    except signing.MalformedHeaders as exc:
        raise _reject("signature_headers_missing", f"{exc} A signed request carries "
                      + ", ".join(signing.SIGNATURE_HEADERS) + "; see docs/api-integration.md.") from None
    operator, channel = _operator_and_channel(request.headers)

    cached = _KEYS.get(signed.app_id, signed.key_id)
    row = cached[1] if cached is not None else _read_key(connection, signed.app_id, signed.key_id)
    institution_id, pem = _usable_key(row, signed.app_id, signed.key_id)

    skew = signed.unix_time - int(now.timestamp())  # whole seconds, like the header
    if abs(skew) > signing.MAX_SKEW_SECONDS:
        raise _reject("timestamp_skew", f"{signing.HEADER_TIMESTAMP} is {abs(skew):.0f} s "
                      f"{'ahead of' if skew > 0 else 'behind'} the platform's clock; at most "
                      f"{signing.MAX_SKEW_SECONDS} s is accepted. Check the system's clock (NTP).",
                      server_time=int(now.timestamp()))

    message = signing.string_to_sign(method=request.method, path=request.path, query=request.query,
                                     body=request.body, timestamp=signed.timestamp, nonce=signed.nonce,
                                     app_id=signed.app_id, key_id=signed.key_id)
    _check_signature(pem, signed.signature, message)

    actor = Actor(kind="machine", channel=channel, id=signed.app_id, institution_id=institution_id,
                  operator=operator, roles=frozenset({HOSPITAL_SYSTEM}))
    if before_claim is not None:
        before_claim(actor)
    expires_at = datetime.fromtimestamp(signed.unix_time, now.tzinfo) + timedelta(seconds=signing.MAX_SKEW_SECONDS + 1)
    claim: Claim = (nonces or _DATABASE_NONCES).claim(connection, signed.app_id, signed.nonce, expires_at, now)
    if not claim.claimed:
        raise _reject("nonce_replayed", f"Nonce {signed.nonce} was already used by this app; every request "
                      "needs a fresh one.")
    generation = claim.keys_generation
    if generation is not None and (cached is None or cached[0] != generation):
        # Read after a claim that saw this generation: a change that replaced an earlier one was
        # committed before, so this row has it, and may be kept under the generation.
        fresh = _read_key(connection, signed.app_id, signed.key_id)
        _KEYS.put(signed.app_id, signed.key_id, generation, fresh)  # a revoked key too: refused before its claim
        if fresh != row:  # changed since the row checked above (a revocation, the app's institution)
            fresh_institution, fresh_pem = _usable_key(fresh, signed.app_id, signed.key_id)
            if fresh_pem != pem:  # never happens (a key id is its key's fingerprint); checked all the same
                _check_signature(fresh_pem, signed.signature, message)
            actor = replace(actor, institution_id=fresh_institution)
    return actor


def _read_key(connection: Connection | Session, app_id: str, key_id: str) -> tuple | None:
    row = repository.app_and_key(connection, app_id, key_id)
    return None if row is None else tuple(row)


def _check_signature(pem: str, signature: bytes, message: str) -> None:
    if not _public_key(pem).verify(signature, message.encode("utf-8")):
        # The string the platform checked is built only from what the caller sent, so showing it
        # gives nothing away and lets an integrator find the line their side builds differently.
        raise _reject("signature_invalid", "The signature does not match this request and key.",
                      string_to_sign=message)
