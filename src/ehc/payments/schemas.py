"""What a payment channel hands back and the problems it answers with (``service.py`` has the channels)."""

from __future__ import annotations

from dataclasses import dataclass

from ..kit.errors import Invalid

MEDICAL_PAYMENT = "medical-payment"  # what the token may pay for: medical bills at a cashier


class PaymentChannelUnknown(Invalid):
    code = "payment_channel_unknown"
    title = "Unknown payment channel"


class PaymentTokenInvalid(Invalid):
    code = "payment_token_invalid"
    title = "Payment token refused"


@dataclass(frozen=True)
class PaymentToken:
    """What a channel learned from a valid template: enough for the cashier to ask for the money."""

    channel: str
    token: str  # the one-time token (a 16-digit PAN-shaped number)
    expiry: str  # YYMM, as track 2 carries it
    purpose: str
