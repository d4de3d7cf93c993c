"""The institution admin's "apps and keys" page: register the institution's systems (apps) and their
SM2 public keys, and revoke keys.

Rules live in ``apps/service.py`` (who manages which app, key format, at most five active keys, a key
never registered twice, revocation final); this page only adds one guard of its own: a pasted
*private* key is refused before it reaches anything, and whatever was pasted is never shown back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ...apps import service as apps
from ...apps.service import InstitutionApp, KeyStatus
from ...kit.errors import NotFound, Problem
from .. import i18n
from ..core import CHINA, PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import Managed, ManagedPage, admin_page, form_failed


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _app_of(scope: Managed, app_id: str) -> InstitutionApp:
    """An app of the institution in the path (the service checks the admin manages it)."""
    app = apps.get_app(scope.ctx, app_id)
    if app.institution_id != scope.institution.id:
        raise NotFound(f"No app {app_id}.", code="app_not_found")
    return app


def _groups(hex_text: str, size: int = 8) -> list[str]:
    return [hex_text[i:i + size] for i in range(0, len(hex_text), size)]


def _when(t: i18n.Translator, moment) -> str:  # noqa: ANN001
    return t.date(moment.astimezone(CHINA).date()) if moment else ""


def _keys_page(request: Request, scope: Managed, state: FormState | None = None,
               status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    views = []
    for app in apps.list_apps(scope.ctx, scope.institution.id):
        keys = [{
            "key_id": key.key_id,
            "fingerprint": key.fingerprint,
            "fingerprint_groups": _groups(key.fingerprint),
            "status": key.status,
            "added": _when(t, key.created_at),
            "added_by": key.created_by or "",
            "revoked": _when(t, key.revoked_at),
        } for key in apps.keys_of(scope.ctx, app)]
        views.append({"id": app.id, "name": app.name, "created": _when(t, app.created_at),
                      "created_by": app.created_by or "", "keys": keys,
                      "active": sum(1 for k in keys if k["status"] == KeyStatus.ACTIVE.value)})
    return admin_page(request, scope, "admin_keys.html", "keys", status_code, apps=views,
                      max_keys=apps.MAX_ACTIVE_KEYS, state=state or FormState())


@router.get("/staff/institution/{institution_id}/keys", response_class=HTMLResponse)
def keys(request: Request, scope: ManagedPage) -> HTMLResponse:
    return _keys_page(request, scope)


@router.post("/staff/institution/{institution_id}/keys/apps", response_class=HTMLResponse)
def create_app(
    request: Request,
    scope: ManagedPage,
    app_name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    values = {"app_name": app_name}
    try:
        app = apps.create_app(scope.ctx, name=app_name, institution_id=scope.institution.id)
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, values, "app", ("app_name",), {"name": "app_name"})
        return _keys_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/keys", "app_created", app.name)


@router.post("/staff/institution/{institution_id}/keys/apps/{app_id}", response_class=HTMLResponse)
def add_key(
    request: Request,
    scope: ManagedPage,
    app_id: str,
    public_key_pem: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    app = _app_of(scope, app_id)
    form = f"key-{app.id}"
    field = f"pem-{app.id}"
    if "PRIVATE KEY" in public_key_pem.upper():
        # Nothing is stored or logged, and the text is not put back into the page.
        state = FormState(form=form)
        state.add(field, i18n.for_request(request)("admin.keys.private_key_refused"))
        return _keys_page(request, scope, state, 422)
    try:
        key = apps.add_key(scope.ctx, app.id, public_key_pem)
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, {}, form, (field,), {"public_key_pem": field})
        return _keys_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/keys", "key_added", key.key_id)


def _key_of(scope: Managed, app_id: str, key_id: str):  # noqa: ANN202
    app = _app_of(scope, app_id)
    key = next((k for k in apps.keys_of(scope.ctx, app) if k.key_id == key_id), None)
    if key is None:
        raise NotFound(f"App {app_id} has no key {key_id}.", code="key_not_found")
    return app, key


@router.get("/staff/institution/{institution_id}/keys/apps/{app_id}/{key_id}/revoke", response_class=HTMLResponse)
def revoke_form(request: Request, scope: ManagedPage, app_id: str, key_id: str) -> HTMLResponse:
    app, key = _key_of(scope, app_id, key_id)
    return admin_page(request, scope, "admin_key_revoke.html", "keys", app={"id": app.id, "name": app.name},
                      key={"key_id": key.key_id, "fingerprint_groups": _groups(key.fingerprint),
                           "status": key.status})


@router.post("/staff/institution/{institution_id}/keys/apps/{app_id}/{key_id}/revoke", response_class=HTMLResponse)
def revoke_key(request: Request, scope: ManagedPage, app_id: str, key_id: str,
               csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    app, key = _key_of(scope, app_id, key_id)
    apps.revoke_key(scope.ctx, app.id, key.key_id)
    return see_other(request, f"{scope.base}/keys", "key_revoked", key.key_id)
