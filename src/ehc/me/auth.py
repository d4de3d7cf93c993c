"""Who may use the resident's own API: a signed-in resident, and nobody else.

What a resident may act on: their own card, and the cards of family members bound to them as their
guardian (``me/service.py``). Any other card answers 404 ``card_not_found``, exactly as a card that
does not exist, so the API never tells a resident whether a stranger's card exists.
"""

from __future__ import annotations

from ..kit.auth import ResidentCtx

Resident = ResidentCtx
