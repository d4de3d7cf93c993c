"""Who may use the resident's own API: a signed-in resident, and nobody else.

What a resident may act on: their own card, and the cards of family members bound to them as their
guardian (``me/service.py``). Any other card answers 404 ``card_not_found``, exactly as a card that
does not exist, so the API never tells a resident whether a stranger's card exists.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..accounts import service as accounts
from ..kit.auth import ResidentCtx

Resident = ResidentCtx


def sign_in_token(request: Request) -> str | None:
    """The access token the resident is signed in with (API bearer token or the pages' cookie): the
    session a report of loss keeps, and the one a password change keeps."""
    return accounts.sign_in_token(request.headers, request.cookies)


SignInToken = Annotated[str | None, Depends(sign_in_token)]
