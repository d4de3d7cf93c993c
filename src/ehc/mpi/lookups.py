"""What the master index asks of the card registry, which is built on it.

``cards`` imports ``mpi.service`` (a card belongs to a person of the index), so the index cannot
import ``cards`` back. The few questions it asks about cards (a person's card, a card by its EHC ID,
every person's EHC ID for a linkage report) are answered by functions the card registry offers in
``cards.service``; ``ehc.wiring.register_hooks`` hands them over once per process
(``mpi.service.provide_cards``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from ..kit.context import Ctx
from .models import Person


class CardRef(Protocol):
    """What the index reads of a card."""

    ehc_id: str
    person_id: str
    status: str


@dataclass(frozen=True)
class CardLookups:
    card_of_person: Callable[[Ctx, Person], CardRef | None]
    get_card: Callable[[Ctx, str], CardRef]  # by EHC ID; raises NotFound
    ehc_ids_by_person: Callable[[Session], dict[str, str]]


_cards: CardLookups | None = None


def provide_cards(lookups: CardLookups) -> None:
    global _cards
    _cards = lookups


def _lookups() -> CardLookups:
    if _cards is None:
        raise RuntimeError("The card look-ups are not registered: call ehc.wiring.register_hooks() first.")
    return _cards


def card_of_person(ctx: Ctx, person: Person) -> CardRef | None:
    return _lookups().card_of_person(ctx, person)


def get_card(ctx: Ctx, ehc_id: str) -> CardRef:
    return _lookups().get_card(ctx, ehc_id)


def ehc_ids_by_person(session: Session) -> dict[str, str]:
    return _lookups().ehc_ids_by_person(session)
