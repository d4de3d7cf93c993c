"""Reporting a card lost, or cancelling it, ends the resident sessions that draw its codes
(docs/qr-format.md §9.1).

Why: offline, a dynamic code is checked for signature and time only, so revocation is enforced where
codes are drawn. The platform already refuses to draw codes for a card that is not normal; ending the
sessions makes sure that a lost phone which is still signed in cannot draw codes again once the card
is recovered or reissued.

Whose sessions: every sign-in (API bearer token and the web page's ``ehc_resident`` cookie, which are
the same ``access_tokens`` rows) of the holder, and of the guardians bound to the holder, since a
guardian's phone draws a family member's codes too (``me.service.guarded_card``).

The one session kept: the one making the report, when a resident reports from the phone or browser
they still hold (``keeping(token)``, set by the resident API and pages). Ending it would protect
nothing (whoever holds it has just acted for the card and could sign in again with the same phone),
and the resident who still has their phone goes on using it. Every other session ends, the lost
phone's included. A report made by window staff, a hospital system or the CLI keeps none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import select

from ..accounts import service as accounts
from ..cards import service as cards
from ..cards.models import Card, CardStatus, FamilyBinding
from ..kit.context import Ctx
from ..mpi import service as mpi

ENDING_ACTIONS = frozenset({"report_lost", "cancel"})

_reporting_session: ContextVar[str | None] = ContextVar("ehc_reporting_session", default=None)


@contextmanager
def keeping(token: str | None) -> Iterator[None]:
    """Within this block, a card transition keeps the session whose bearer token is ``token``."""
    reset = _reporting_session.set(token)
    try:
        yield
    finally:
        _reporting_session.reset(reset)


def drawing_people(ctx: Ctx, card: Card) -> set[str]:
    """The people whose sign-ins can draw this card's codes: the holder and their guardians."""
    holder = {card.person_id, mpi.resolve(ctx, card.person_id).id}
    guardians = ctx.session.scalars(
        select(FamilyBinding.guardian_person_id).where(FamilyBinding.member_person_id.in_(holder)))
    return holder | set(guardians)


def end_code_drawing_sessions(ctx: Ctx, card: Card, action: str, from_status: CardStatus,
                              sequence_before: int) -> None:
    """The card transition hook (registered by ``ehc.wiring``)."""
    if action not in ENDING_ACTIONS:
        return
    keep = _reporting_session.get()
    for person_id in sorted(drawing_people(ctx, card)):
        accounts.revoke_subject_tokens(ctx.session, "resident", person_id, keep=keep)
