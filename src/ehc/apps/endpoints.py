"""App API: thin. Register apps and their keys (admins), and a ping to check a signature."""

from __future__ import annotations

from fastapi import APIRouter

from ..kit.auth import RawBody
from . import service, signing
from .auth import AnyCaller, AppManager
from .schemas import AppIn, AppOut, KeyIn, KeyOut, PingOut, app_out, key_out

router = APIRouter(prefix="/api/v1/apps", tags=["apps"])


# One route per method, so each has its own operationId (ping_get, ping_post).
@router.get("/ping", response_model=PingOut, operation_id="ping_get",
            summary="Who the platform thinks is calling (check a signature here first)")
@router.post("/ping", response_model=PingOut, operation_id="ping_post",
             summary="Who the platform thinks is calling, with the body's SM3 digest")
def ping(ctx: AnyCaller, body: RawBody) -> PingOut:
    actor = ctx.actor
    return PingOut(actor_kind=actor.kind, app_id=actor.id if actor.kind == "machine" else None,
                   institution_id=actor.institution_id, operator=actor.operator, channel=actor.channel.value,
                   body_sm3=signing.body_digest(body))


@router.post("", response_model=AppOut, status_code=201, summary="Register an app of an institution")
def create_app(body: AppIn, ctx: AppManager) -> AppOut:
    app = service.create_app(ctx, name=body.name, institution_id=body.institution_id)
    return app_out(app, [])


@router.get("", response_model=list[AppOut], summary="Apps the caller manages")
def list_apps(ctx: AppManager, institution_id: str | None = None) -> list[AppOut]:
    return [app_out(app, service.keys_of(ctx, app)) for app in service.list_apps(ctx, institution_id)]


@router.get("/{app_id}", response_model=AppOut)
def get_app(app_id: str, ctx: AppManager) -> AppOut:
    app = service.get_app(ctx, app_id)
    return app_out(app, service.keys_of(ctx, app))


@router.post("/{app_id}/keys", response_model=KeyOut, status_code=201,
             summary="Register an SM2 public key (add, or the first half of a rotation)")
def add_key(app_id: str, body: KeyIn, ctx: AppManager) -> KeyOut:
    return key_out(service.add_key(ctx, app_id, body.public_key_pem))


@router.post("/{app_id}/keys/{key_id}/revoke", response_model=KeyOut,
             summary="Revoke a key (refused from the next request on; final)")
def revoke_key(app_id: str, key_id: str, ctx: AppManager) -> KeyOut:
    return key_out(service.revoke_key(ctx, app_id, key_id))
