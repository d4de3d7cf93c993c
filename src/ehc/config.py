"""Settings, read once from the environment (prefix ``EHC_``).

Every default is the embedded one: SQLite and keys under ``./var``, so ``make run`` needs nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"EHC_{name}", default)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("DATA_DIR", "var")).resolve())
    database_url: str = ""
    keys_dir: Path = field(default_factory=Path)
    # How many family members one guardian may bind (one real platform allows 5).
    family_limit: int = field(default_factory=lambda: int(_env("FAMILY_LIMIT", "5")))
    # Region the platform serves (GB/T 2260); a province by default.
    home_region: str = field(default_factory=lambda: _env("HOME_REGION", "510000"))
    # Which real-name verifier registrations go through (identity/verification.py registry).
    verifier: str = field(default_factory=lambda: _env("VERIFIER", "local-document"))
    environment: str = field(default_factory=lambda: _env("ENV", "development"))
    log_json: bool = field(default_factory=lambda: _env("LOG_JSON", "0") == "1")
    # Who sends residents' SMS (accounts/sms.py registry). "outbox" is the development sender: it keeps
    # messages, codes included, in the ``sms_outbox`` table and is refused when EHC_ENV=production.
    sms_sender: str = field(default_factory=lambda: _env("SMS_SENDER", "outbox"))
    # How long a resident's sign-in (bearer token or ``ehc_resident`` cookie) lasts.
    # Requests a minute per hospital app, per signed-in person and per anonymous address (0 = off).
    rate_limit_app: int = field(default_factory=lambda: int(_env("RATE_LIMIT_APP", "6000")))
    rate_limit_identity: int = field(default_factory=lambda: int(_env("RATE_LIMIT_IDENTITY", "600")))
    rate_limit_anonymous: int = field(default_factory=lambda: int(_env("RATE_LIMIT_ANONYMOUS", "300")))
    resident_session_hours: int = field(default_factory=lambda: int(_env("RESIDENT_SESSION_HOURS", "24")))
    # Seconds after which a phone redraws its dynamic QR code (``refresh_after``); codes are accepted
    # for 120 s, so anything from 5 to 100 keeps one valid on screen. Short values are for tests.
    qr_refresh_seconds: int = field(default_factory=lambda: max(1, min(100, int(_env("QR_REFRESH_SECONDS", "60")))))
    # Statistics: how often ``ehc serve`` feeds the analytical store (0: never; run ``ehc stats refresh``),
    # and the smallest count the console publishes (smaller ones are shown as "<5").
    stats_refresh_seconds: int = field(default_factory=lambda: int(_env("STATS_REFRESH_SECONDS", "300")))
    stats_threshold: int = field(default_factory=lambda: max(2, int(_env("STATS_THRESHOLD", "5"))))
    # Redis, where every worker process shares rate limits and signed requests' nonces
    # (e.g. redis://127.0.0.1:6379/0); empty: the embedded fallback, one process (docs/operations.md).
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", ""))
    # Prefix of the platform's Redis keys, so several platforms (or test runs) can share one Redis.
    redis_prefix: str = field(default_factory=lambda: _env("REDIS_PREFIX", "ehc:"))

    # Payments (docs/payments.md): the medical-insurance service and the bank, over HTTP (empty: no
    # payments here). ``ehc sandbox insurance|bank`` runs stand-ins; ``make run`` starts both.
    insurance_url: str = field(default_factory=lambda: _env("INSURANCE_URL", ""))
    bank_url: str = field(default_factory=lambda: _env("BANK_URL", ""))
    # Seconds the platform waits for one answer of either; a slower answer is retried with the same id.
    payments_timeout: float = field(default_factory=lambda: float(_env("PAYMENTS_TIMEOUT", "3")))
    # Where the bank sends its signed callbacks (this platform's base URL as the bank reaches it).
    public_url: str = field(default_factory=lambda: _env("PUBLIC_URL", "http://127.0.0.1:8000"))

    # The upper-level platform scheduled reports are sent on to (docs/statistics.md, "Sending reports
    # upward"): its upload URL, and the app id, key id and SM2 private key (PEM file) it knows us by.
    upstream_url: str = field(default_factory=lambda: _env("UPSTREAM_URL", ""))
    upstream_app_id: str = field(default_factory=lambda: _env("UPSTREAM_APP_ID", ""))
    upstream_key_id: str = field(default_factory=lambda: _env("UPSTREAM_KEY_ID", ""))
    upstream_key_file: str = field(default_factory=lambda: _env("UPSTREAM_KEY_FILE", ""))

    def __post_init__(self) -> None:
        if not self.database_url:
            url = _env("DATABASE_URL", "") or f"sqlite:///{self.data_dir / 'ehc.sqlite3'}"
            object.__setattr__(self, "database_url", url)
        if self.keys_dir == Path():
            object.__setattr__(self, "keys_dir", Path(_env("KEYS_DIR", str(self.data_dir / "keys"))).resolve())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
