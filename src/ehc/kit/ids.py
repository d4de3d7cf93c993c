"""Identifiers the platform mints. Random, so nothing about a person can be read from or derived into them."""

from __future__ import annotations

import secrets


def new_person_id() -> str:
    """Master index id: 32 upper-case hex characters (128 random bits)."""
    return secrets.token_hex(16).upper()


def new_card_id() -> str:
    """EHC ID: 64 upper-case hex characters (256 random bits, the size of an SM3 digest).

    Random rather than derived from the document number: nobody, not even with the platform's keys,
    can compute a card ID from an ID number; the link lives only in the master index.
    """
    return secrets.token_hex(32).upper()


def new_id() -> str:
    """A general-purpose row id (events, imports, institutions)."""
    return secrets.token_hex(12)
