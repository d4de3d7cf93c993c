"""The app-management API's wire format."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, examples=["HIS outpatient"])
    institution_id: str | None = Field(
        None, max_length=24, description="Defaults to the institution admin's own institution; platform admins name one.")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key_pem: str = Field(max_length=2000, description="SM2 public key, PEM (-----BEGIN PUBLIC KEY-----)")


class KeyOut(BaseModel):
    key_id: str = Field(description="First 16 hex characters of the key's SM3 fingerprint")
    fingerprint: str = Field(description="SM3 of the uncompressed public point (04 || x || y), hex")
    status: str = Field(description="active or revoked")
    public_key_pem: str
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    revoked_by: str | None


class AppOut(BaseModel):
    app_id: str
    institution_id: str
    name: str
    created_at: datetime
    created_by: str | None
    keys: list[KeyOut]


class PingOut(BaseModel):
    """Who the platform thinks is calling: what an integrator checks first."""

    actor_kind: str = Field(description="machine for a correctly signed request, anonymous without signature")
    app_id: str | None
    institution_id: str | None
    operator: str | None
    channel: str
    body_sm3: str = Field(description="SM3 of the body as the platform received it, hex")


def key_out(key) -> KeyOut:  # noqa: ANN001
    return KeyOut.model_validate(key, from_attributes=True)


def app_out(app, keys) -> AppOut:  # noqa: ANN001
    return AppOut(app_id=app.id, institution_id=app.institution_id, name=app.name, created_at=app.created_at,
                  created_by=app.created_by, keys=[key_out(k) for k in keys])
