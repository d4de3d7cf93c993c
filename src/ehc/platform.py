"""The running platform: settings, database and keys, built once per process (app, CLI, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Settings, get_settings
from .crypto import KeyStore
from .db import Database
from .kit.context import Actor, Ctx, Vault
from .kit.ratelimit import RateLimiter
from .wiring import register_hooks


@dataclass
class Platform:
    settings: Settings
    db: Database
    keys: KeyStore
    vault: Vault
    limiters: dict[str, RateLimiter] = field(init=False)

    def __post_init__(self) -> None:
        register_hooks()
        self.limiters = {
            "machine": RateLimiter(self.settings.rate_limit_app),
            "anonymous": RateLimiter(self.settings.rate_limit_anonymous),
            "identity": RateLimiter(self.settings.rate_limit_identity),
        }

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
