"""The two browser-side proofs the pages rely on, both keyed with the platform's HMAC-SM3 key.

CSRF (double submit): the form page sets a cookie ``ehc_csrf`` and puts the same token in a hidden
field. A cross-site page can make the browser send the cookie but cannot read it, so it cannot put
the matching value in the form. The token is ``nonce.mac`` with a keyed MAC over the nonce, so a
cookie planted from elsewhere (a sibling sub-domain, a man in the middle on plain HTTP) is not
accepted either. Cookie and field are compared in constant time.

Card cookie: after an application, ``ehc_card = ehc_id.expiry.mac`` with
``mac = blind("web.card-cookie", "ehc_id.expiry")``: "this browser applied for card X in the last
30 minutes". It is the only thing ``/card`` trusts; a signed-in resident sees their card on ``/me``
(the ``ehc_resident`` cookie, ``accounts.auth``; staff pages use ``ehc_staff``).
"""

from __future__ import annotations

import hmac
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from ..kit.clock import unix_now
from ..kit.context import Vault

CSRF_COOKIE = "ehc_csrf"
CSRF_FIELD = "csrf_token"
CSRF_CONTEXT = "web.csrf"
CSRF_MAX_AGE = 2 * 60 * 60  # a slow applicant still gets their form through

CARD_COOKIE = "ehc_card"
CARD_CONTEXT = "web.card-cookie"
CARD_MAX_AGE = 30 * 60

_EHC_ID = re.compile(r"[0-9A-F]{64}")
_MAC = re.compile(r"[0-9a-f]{64}")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- CSRF -------------------------------------------------------------------------------------

def _csrf_authentic(vault: Vault, token: str) -> bool:
    nonce, _, mac = token.partition(".")
    if not nonce or not _MAC.fullmatch(mac):
        return False
    return hmac.compare_digest(mac, vault.blind(CSRF_CONTEXT, nonce))


def csrf_token(request: Request, vault: Vault) -> tuple[str, bool]:
    """The token for this browser: the one in its cookie if authentic, else a new one (``True``)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if current and _csrf_authentic(vault, current):
        return current, False
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{vault.blind(CSRF_CONTEXT, nonce)}", True


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(CSRF_COOKIE, token, max_age=CSRF_MAX_AGE, path="/", httponly=True, samesite="lax",
                        secure=_secure(request))


def csrf_valid(request: Request, vault: Vault, submitted: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not submitted:
        return False
    same = hmac.compare_digest(cookie.encode(), submitted.encode())
    return same and _csrf_authentic(vault, cookie)


# -- card cookie ------------------------------------------------------------------------------

def card_cookie_value(vault: Vault, ehc_id: str, now: float | None = None) -> str:
    expiry = int(now if now is not None else unix_now()) + CARD_MAX_AGE
    return f"{ehc_id}.{expiry}.{vault.blind(CARD_CONTEXT, f'{ehc_id}.{expiry}')}"


def set_card_cookie(response: Response, request: Request, vault: Vault, ehc_id: str) -> None:
    response.set_cookie(CARD_COOKIE, card_cookie_value(vault, ehc_id), max_age=CARD_MAX_AGE, path="/",
                        httponly=True, samesite="lax", secure=_secure(request))


def card_from_cookie(vault: Vault, value: str | None, now: float | None = None) -> str | None:
    """The EHC ID the cookie vouches for, or ``None`` if it is missing, forged or expired."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 3:
        return None
    ehc_id, expiry, mac = parts
    if not (_EHC_ID.fullmatch(ehc_id) and expiry.isdigit() and len(expiry) <= 12 and _MAC.fullmatch(mac)):
        return None
    if not hmac.compare_digest(mac, vault.blind(CARD_CONTEXT, f"{ehc_id}.{expiry}")):
        return None
    if int(expiry) <= (now if now is not None else unix_now()):
        return None
    return ehc_id
