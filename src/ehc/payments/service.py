"""Payment channels: who puts the payment application into a two-in-one QR code (docs/qr-format.md §8).

A channel builds one EMVCo application template (tag ``61``: AID, label, a one-time payment token,
a cryptogram) for a card at the moment a code is drawn, and validates such a template when a
cashier terminal hands it back. The health-card side never reads inside the template: it only binds
it to the signed health code (``qr.codec.payment_binding``).

Until the payment issue lands, the only channel is the platform's ``sandbox`` (``sandbox.py``, reached
through this service): it moves no money and is refused when ``EHC_ENV=production``. A real bank or medical-insurance channel
implements :class:`PaymentChannel` and is added to :data:`CHANNELS`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ..cards.service import Card
from ..kit.context import Ctx
from ..kit.errors import field_error
from . import sandbox
from .schemas import MEDICAL_PAYMENT, PaymentChannelUnknown, PaymentToken, PaymentTokenInvalid

# The payment domain's face: what a channel hands back and the problems it answers with, too.
__all__ = ["MEDICAL_PAYMENT", "PaymentChannel", "PaymentChannelUnknown", "PaymentToken", "PaymentTokenInvalid",
           "CHANNELS", "SANDBOX_ONLY", "available", "channel"]


class PaymentChannel(Protocol):
    """A source of payment applications for two-in-one codes."""

    name: str

    def template_for(self, card: Card, *, purpose: str, now: datetime) -> bytes:
        """A fresh ``61`` template for this card: a new one-time token on every call (§5.4), so
        that two codes of one card cannot be linked through their payment part."""
        ...

    def validate(self, template: bytes, *, purpose: str, now: datetime) -> PaymentToken:
        """The cashier side: check the template this channel built; raise ``PaymentTokenInvalid``."""
        ...


def _sandbox(ctx: Ctx) -> PaymentChannel:
    return sandbox.for_keys(ctx.vault.keys)


# name → factory; a factory may look at the settings (the sandbox stays out of production).
CHANNELS: dict[str, Callable[[Ctx], PaymentChannel]] = {"sandbox": _sandbox}
SANDBOX_ONLY = frozenset({"sandbox"})


def channel(ctx: Ctx, name: str) -> PaymentChannel:
    """The payment channel called ``name``, or a 422 ``payment_channel_unknown``."""
    factory = CHANNELS.get(name)
    if factory is None or (name in SANDBOX_ONLY and ctx.settings.environment == "production"):
        raise PaymentChannelUnknown(
            f"No payment channel {name!r} here; known: {', '.join(available(ctx)) or 'none'}.",
            errors=[field_error("payment", "payment_channel_unknown", "not a payment channel")],
        )
    return factory(ctx)


def available(ctx: Ctx) -> list[str]:
    production = ctx.settings.environment == "production"
    return sorted(n for n in CHANNELS if not (production and n in SANDBOX_ONLY))
