"""The API's description and its documentation pages, as an integrator's tools need them.

FastAPI's generated document is made true to what the server answers before anyone reads it:

- every operation has its own ``operationId`` (a route serving several methods gets one per method);
- every refusal is declared as RFC 9457 ``application/problem+json`` with the ``Problem`` schema: 400,
  401, 403, 404, 409, 422 and 429 on every operation (the server can answer each of them to any call:
  a bad body, no caller, a role, an object out of reach, a state, a limit), never FastAPI's
  ``HTTPValidationError``, which the server never sends;
- the callers' proofs are security schemes (a bearer token, the EHC-SM2-V1 signature headers, the
  cookies the pages use), offered on every operation together with "none" (the endpoint's own rule
  decides who passes: docs/api-integration.md);
- schema names are unique by title too: two domains' ``DocumentIn`` become ``CardsDocumentIn`` and
  ``MpiDocumentIn``, so generators keep both.

``/docs`` (Swagger UI 5) is served from the platform's own files (the assets the ``fastapi-offline``
distribution packages, mounted at ``/docs/assets``): it works with no internet. There is no ReDoc page:
its bundle fetches its logo from a CDN.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import fastapi_offline

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = "/docs/assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"  # swagger-ui-bundle.js, swagger-ui.css
PROBLEM_STATUSES = {
    "400": "Bad request (a malformed value, a NUL character)",
    "401": "No caller, or the proof of who is calling failed",
    "403": "The caller may not do this",
    "404": "Not found, or out of the caller's reach",
    "409": "The request clashes with the current state",
    "422": "A value breaks a rule",
    "429": "Too many requests: wait `Retry-After` seconds",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; branch on `code`, a stable machine code.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
    },
    "additionalProperties": True,
}
FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "FieldError",
    "type": "object",
    "required": ["field", "code", "message"],
    "properties": {"field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}},
    "additionalProperties": True,
}
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerToken": {"type": "http", "scheme": "bearer",
                    "description": "A staff token (POST /api/v1/auth/staff/token) or a resident's token."},
    "sm2Signature": {"type": "apiKey", "in": "header", "name": "X-EHC-Signature",
                     "description": "A hospital system's EHC-SM2-V1 signature, with X-EHC-App-Id, X-EHC-Key-Id, "
                                    "X-EHC-Timestamp and X-EHC-Nonce (docs/api-integration.md)."},
    "staffCookie": {"type": "apiKey", "in": "cookie", "name": "ehc_staff"},
    "residentCookie": {"type": "apiKey", "in": "cookie", "name": "ehc_resident"},
}
# Every proof is offered, and none: whether an operation needs one is its own rule.
SECURITY = [{"bearerToken": []}, {"sm2Signature": []}, {"staffCookie": []}, {"residentCookie": []}, {}]
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _walk_refs(node: Any, renames: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in renames:
                node["$ref"] = f"#/components/schemas/{renames[name]}"
        for value in node.values():
            _walk_refs(value, renames)
    elif isinstance(node, list):
        for value in node:
            _walk_refs(value, renames)


def _unique_schema_names(document: dict[str, Any]) -> None:
    """FastAPI names clashing models by module path (``ehc__mpi__schemas__DocumentIn``) but leaves their
    titles equal; generators name classes by title and drop one. Both get a domain-prefixed name."""
    schemas = document.get("components", {}).get("schemas", {})
    renames: dict[str, str] = {}
    for name in list(schemas):
        match = re.fullmatch(r"ehc__(\w+?)__(?:\w+__)*(\w+)", name)
        if match is None:
            continue
        domain, model = match.groups()
        renames[name] = "".join(part.capitalize() for part in domain.split("_")) + model.split("__")[-1]
    for old, new in renames.items():
        schema = schemas.pop(old)
        schema["title"] = new
        schemas[new] = schema
    titles: dict[str, str] = {}
    for name, schema in schemas.items():  # any other clash of titles: the name is the title
        if schema.get("title") in titles:
            schema["title"] = name
        titles[schema.get("title", name)] = name
    _walk_refs(document, renames)


def _problems_declared(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["FieldError"] = FIELD_ERROR_SCHEMA
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    seen: set[str] = set()
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            op_id = operation.get("operationId") or f"{method}_{path}"
            if op_id in seen or len([m for m in _METHODS if m in item]) > 1 and not op_id.endswith(f"_{method}"):
                op_id = f"{op_id}_{method}"
            seen.add(op_id)
            operation["operationId"] = op_id
            responses = operation.setdefault("responses", {})
            for response in responses.values():  # images and PDF labels: bytes, so generators keep them
                for media, body in response.get("content", {}).items():
                    if "json" not in media and not body.get("schema"):
                        body["schema"] = {"type": "string", "format": "binary"}
            for declared in responses.values():  # a door's own refusal schema, named once (generators)
                for body in declared.get("content", {}).values():
                    shape = body.get("schema", {})
                    if shape.get("properties", {}).get("resourceType", {}).get("enum") == ["OperationOutcome"]:
                        schemas["OperationOutcome"] = shape
                        body["schema"] = {"$ref": "#/components/schemas/OperationOutcome"}
            for status, description in PROBLEM_STATUSES.items():
                # A door with refusals of its own (FHIR's OperationOutcomes) has declared them already.
                declared = responses.get(status)
                if declared is None or not declared.get("content") or "ValidationError" in str(declared["content"]):
                    responses[status] = {"description": description, "content": problem}
            operation["security"] = SECURITY
    document["components"]["securitySchemes"] = SECURITY_SCHEMES


def document_of(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes, tags=app.openapi_tags, servers=app.servers)
    _unique_schema_names(document)
    _problems_declared(document)
    return document


def install(app: FastAPI) -> None:
    """The corrected document at ``/openapi.json`` and Swagger UI at ``/docs``, from the platform's own
    files (create the app with ``docs_url=None, redoc_url=None``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_of(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(DOCS_ASSETS, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} · API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url="/static/icon.svg", oauth2_redirect_url="/docs/oauth2-redirect")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
