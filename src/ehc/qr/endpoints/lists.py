"""Public, signed lists for offline terminals (docs/qr-format.md §11, §12): no sign-in, cacheable.

Anyone may fetch them: they name no card and no person, and terminals check the root key's signature,
not the connection. Callers get the anonymous allowance of requests per address.
"""

from __future__ import annotations

import gzip
import json

from fastapi import APIRouter, Request, Response

from ...kit.context import Actor
from ...kit.deps import DbSession, get_platform
from .. import service

router = APIRouter(tags=["qr"])

# Terminals sync at least daily; a withdrawn key or a new revocation should reach them within minutes.
_TRUST_CACHE = "public, max-age=300"
_REVOCATIONS_CACHE = "public, max-age=60"
_GZIP_ABOVE = 1024  # bytes: a large revocation list of random hex compresses to about half


def _admit(request: Request) -> None:
    get_platform(request).check_rate(Actor.anonymous(), request.client.host if request.client else None)


def _json(request: Request, body: bytes, cache: str) -> Response:
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
    if len(body) > _GZIP_ABOVE and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


def _dump(envelope: dict) -> bytes:
    return json.dumps(envelope, separators=(",", ":")).encode()


@router.get("/.well-known/ehc/root-key", summary="The root public key terminals pin (check its fingerprint)")
def root_key(request: Request) -> Response:
    _admit(request)
    return _json(request, _dump(service.root_key_info(get_platform(request).keys)), "public, max-age=86400")


@router.get("/.well-known/ehc/trust-list", summary="The QR issuing keys terminals accept, signed by the root key")
def trust_list(request: Request) -> Response:
    _admit(request)
    return _json(request, _dump(service.trust_list(get_platform(request).keys)), _TRUST_CACHE)


@router.get("/.well-known/ehc/revocations",
            summary="Revocation ids of static codes to refuse, signed by the root key; ?since=SERIAL for changes")
def revocations(request: Request, session: DbSession, since: str | None = None) -> Response:
    _admit(request)
    platform = get_platform(request)
    ctx = platform.ctx(session, Actor.anonymous())
    envelope = service.revocation_list(ctx, service.parse_since(since))
    return _json(request, _dump(envelope), _REVOCATIONS_CACHE)
