"""The running platform: settings, database and keys, built once per process (app, CLI, tests)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings, get_settings
from .crypto import KeyStore
from .db import Database
from .kit.context import Actor, Ctx, Vault


@dataclass
class Platform:
    settings: Settings
    db: Database
    keys: KeyStore
    vault: Vault

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Platform":
        settings = settings or get_settings()
        keys = KeyStore(settings.keys_dir)
        if not keys.exists:
            raise SystemExit(f"No key store at {settings.keys_dir}; run `ehc keys init` first.")
        return cls(settings=settings, db=Database(settings.database_url), keys=keys, vault=Vault(keys))

    def ctx(self, session, actor: Actor) -> Ctx:  # noqa: ANN001
        return Ctx(session=session, vault=self.vault, actor=actor, settings=self.settings)
