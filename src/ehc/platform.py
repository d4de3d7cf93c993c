"""The running platform: settings, database and keys, built once per process (app, CLI, tests).

With ``EHC_REDIS_URL`` the rate limits and the replay store of signed requests' nonces are shared by
every process through Redis (``kit.shared``); without it, the embedded fallback: limits in this
process, nonces in the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .apps import service as apps
from .config import Settings, get_settings
from .crypto import KeyStore
from .db import Database
from .kit import shared
from .kit.context import Actor, Ctx, Vault
from .kit.ratelimit import RateLimiter, SharedRateLimiter
from .wiring import register_hooks

log = logging.getLogger("ehc.platform")


@dataclass
class Platform:
    settings: Settings
    db: Database
    keys: KeyStore
    vault: Vault
    limiters: dict[str, RateLimiter | SharedRateLimiter] = field(init=False)
    redis: shared.Redis | None = field(init=False, default=None)
    nonces: apps.NonceStore = field(init=False)

    def __post_init__(self) -> None:
        register_hooks()
        limits = {"machine": self.settings.rate_limit_app, "anonymous": self.settings.rate_limit_anonymous,
                  "identity": self.settings.rate_limit_identity}
        if self.settings.redis_url:
            try:
                self.redis = shared.connect(self.settings.redis_url)
            except shared.RedisError as exc:
                raise SystemExit(f"Redis at EHC_REDIS_URL does not answer ({exc}); start it, or unset "
                                 "EHC_REDIS_URL to run one process on the embedded fallback.") from None
            weak = shared.durability(self.redis)
            if weak is not None:
                if self.settings.environment == "production":
                    raise SystemExit(f"{weak}. Run it with `appendonly yes` and `appendfsync always` "
                                     "(docs/operations.md).")
                log.warning("replay store not crash-safe: %s", weak)
            prefix = self.settings.redis_prefix
            self.limiters = {kind: SharedRateLimiter(self.redis, limit, prefix) for kind, limit in limits.items()}
            # The app's allowance is spent by the nonce claim's own script: one round trip for both.
            self.nonces = apps.SharedNonces(self.redis, prefix, app_limit=self.limiters["machine"])
        else:
            self.limiters = {kind: RateLimiter(limit) for kind, limit in limits.items()}
            self.nonces = apps.DatabaseNonces()

    def check_rate(self, actor: Actor, address: str | None) -> None:
        """One request's worth of the caller's allowance: per app, per person, or per address."""
        if actor.kind == "machine":
            self.limiters["machine"].check(f"app:{actor.id}")
        elif actor.kind == "anonymous":
            self.limiters["anonymous"].check(f"ip:{address or '-'}")
        elif actor.kind != "system":
            self.limiters["identity"].check(f"{actor.kind}:{actor.id}")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Platform":
        settings = settings or get_settings()
        keys = KeyStore(settings.keys_dir)
        if not keys.exists:
            raise SystemExit(f"No key store at {settings.keys_dir}; run `ehc keys init` first.")
        return cls(settings=settings, db=Database(settings.database_url), keys=keys, vault=Vault(keys))

    def ctx(self, session, actor: Actor) -> Ctx:  # noqa: ANN001
        return Ctx(session=session, vault=self.vault, actor=actor, settings=self.settings)
