"""What a signed-in resident may do with cards: their own, and those of the family members they guard.

The card rules themselves (lifecycle, binding, newborns) stay in ``cards/service.py``; this module
only decides *which* cards a resident reaches, and adds the one rule of binding from the resident's
side:

* A resident may bind a family member who has no card yet (the card is registered now, from the
  resident's channel), or one whose card was registered with the resident's own phone (the household
  already shares the phone, and whoever holds the phone could sign in for them). Binding someone
  else's existing card needs that person's presence at a service window: otherwise knowing a name
  and an ID number would be enough to take over a stranger's card. That answers 409
  ``family_member_consent_required``.
* A card that is neither the resident's own nor bound to them answers 404 ``card_not_found``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..accounts import service as accounts
from ..cards import service as cards
from ..cards.service import Card, FamilyBinding
from ..kit.context import Ctx
from ..kit.errors import Conflict, Invalid, NotFound
from ..mpi import service as mpi
from ..mpi.service import Person

LOST_BY_HOLDER = "reported lost by the holder online"
LOST_BY_GUARDIAN = "reported lost by the guardian online"


def _not_found() -> NotFound:
    return NotFound("No card with this EHC ID.", code="card_not_found")


def me(ctx: Ctx) -> Person:
    return mpi.resolve(ctx, ctx.actor.id)


def my_card(ctx: Ctx) -> Card:
    card = cards.card_of_person(ctx, me(ctx))
    if card is None:
        raise _not_found()
    return card


def family(ctx: Ctx) -> list[tuple[FamilyBinding, Card | None]]:
    return cards.family_of(ctx, my_card(ctx).ehc_id)


def guarded_card(ctx: Ctx, ehc_id: str) -> tuple[Card, FamilyBinding]:
    """A family member's card that the resident guards; any other card is "not found"."""
    try:
        card = cards.get_card(ctx, ehc_id)
    except NotFound:
        raise _not_found() from None
    binding = cards.guardian_binding(ctx, me(ctx), card)
    if binding is None:
        raise _not_found()
    return card, binding


def bind_family_member(ctx: Ctx, member: cards.Registration, relation: str) -> cards.Issued:
    guardian_card = my_card(ctx)
    guardian = me(ctx)
    try:
        existing = cards.find_by_document(ctx, member.document_type, member.document_number)
    except (NotFound, Invalid):  # a bad document is reported by the registration itself, field by field
        existing = None
    if existing is not None and cards.guardian_binding(ctx, guardian, existing) is None:
        holder = mpi.resolve(ctx, existing.person_id)
        if holder.phone_index is None or holder.phone_index != guardian.phone_index:
            raise Conflict(
                "This person already has a card registered with another phone. Bind them at a service "
                "window, together with them or their documents.",
                code="family_member_consent_required",
            )
    return cards.bind_family_member(ctx, guardian_card.ehc_id, member, relation)


def register_newborn(ctx: Ctx, baby: cards.Newborn) -> cards.Issued:
    return cards.register_newborn(ctx, my_card(ctx).ehc_id, baby)


def report_my_card_lost(ctx: Ctx, reason: str | None, *, keep_session: str | None = None) -> Card:
    """Report the resident's own card lost. The holder's other sign-ins end; ``keep_session`` (the
    bearer token making the report) stays (see below)."""
    with keeping(keep_session):
        return cards.transition(ctx, my_card(ctx).ehc_id, "report_lost", reason or LOST_BY_HOLDER)


def report_member_card_lost(ctx: Ctx, ehc_id: str, reason: str | None, *, keep_session: str | None = None) -> Card:
    card, _ = guarded_card(ctx, ehc_id)
    with keeping(keep_session):
        return cards.transition(ctx, card.ehc_id, "report_lost", reason or LOST_BY_GUARDIAN)


# -- sign-ins drawing a card's codes ----------------------------------------------------------------
#
# Reporting a card lost, or cancelling it, ends the resident sessions that draw its codes
# (docs/qr-format.md §9.1).
#
# Why: offline, a dynamic code is checked for signature and time only, so revocation is enforced where
# codes are drawn. The platform already refuses to draw codes for a card that is not normal; ending the
# sessions makes sure that a lost phone which is still signed in cannot draw codes again once the card
# is recovered or reissued.
#
# Whose sessions: every sign-in (API bearer token and the web page's ``ehc_resident`` cookie, which are
# the same ``access_tokens`` rows) of the holder, and of the guardians bound to the holder, since a
# guardian's phone draws a family member's codes too (``me.service.guarded_card``).
#
# The one session kept: the one making the report, when a resident reports from the phone or browser
# they still hold (``keeping(token)``, set by the resident API and pages). Ending it would protect
# nothing (whoever holds it has just acted for the card and could sign in again with the same phone),
# and the resident who still has their phone goes on using it. Every other session ends, the lost
# phone's included. A report made by window staff, a hospital system or the CLI keeps none.

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


def end_code_drawing_sessions(ctx: Ctx, change: cards.CardChange) -> None:
    """The card transition hook (registered by ``ehc.wiring``). The people whose sign-ins can draw
    the card's codes are its holder and their guardians."""
    if change.action not in ENDING_ACTIONS:
        return
    keep = _reporting_session.get()
    for person_id in sorted(cards.holder_and_guardians(ctx, change.person_id)):
        accounts.revoke_subject_tokens(ctx.session, "resident", person_id, keep=keep)
