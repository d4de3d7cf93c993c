"""The second factor for static codes on the wire (rules in ``qr/second_factor.py``): the holder sets
the card's PIN, window staff clear a forgotten one, a verifier has a one-time code texted to the holder."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from ...cards import service as cards
from ...cards.service import Card
from ...kit.context import Ctx
from ...me import service as me
from .. import service
from ..auth import QRHolder, QRPrinter, QRVerifier

router = APIRouter(tags=["qr"])


class PinIn(BaseModel):
    pin: str = Field(max_length=16, description="the new PIN: 6 digits, not a trivial one (000000, 123456 ...)")
    current_pin: str | None = Field(default=None, max_length=16, description="needed to change a PIN already set")


class PinStatusOut(BaseModel):
    set: bool
    locked_until: datetime | None = Field(description="while too many wrong PINs lock it")


class PinClearIn(BaseModel):
    reason: str = Field(max_length=500, description="how the holder proved who they are, and why")


class PinClearedOut(BaseModel):
    ehc_id: str
    cleared: bool = Field(description="false when the card had no PIN")


class SmsRequestIn(BaseModel):
    code: str = Field(max_length=1024, description="the scanned static code (EHC1:)")


class SmsSentOut(BaseModel):
    masked_phone: str
    expires_at: datetime
    resend_after: int = Field(description="seconds before another code may be requested for this card")


def _resident_card(ctx: Ctx, member: str | None) -> Card:
    return me.guarded_card(ctx, member)[0] if member else me.my_card(ctx)


def _status(ctx: Ctx, card: Card) -> PinStatusOut:
    status = service.pin_status(ctx, card)
    return PinStatusOut(set=status.set, locked_until=status.locked_until)


@router.get("/api/v1/me/card/pin", response_model=PinStatusOut,
            summary="Whether my card (or, with ?member=, a family member's I guard) has a PIN")
def my_pin(ctx: QRHolder, member: str | None = None) -> PinStatusOut:
    return _status(ctx, _resident_card(ctx, member))


@router.put("/api/v1/me/card/pin", response_model=PinStatusOut,
            summary="Set or change the PIN that goes with my card's printed (static) code")
def set_my_pin(body: PinIn, ctx: QRHolder, member: str | None = None) -> PinStatusOut:
    card = _resident_card(ctx, member)
    service.set_pin(ctx, card, body.pin, current_pin=body.current_pin)
    return _status(ctx, card)


@router.delete("/api/v1/cards/{ehc_id}/pin", response_model=PinClearedOut,
               summary="Clear a forgotten PIN, once the holder has proved who they are (reason required)")
def clear_pin(ehc_id: str, body: PinClearIn, ctx: QRPrinter) -> PinClearedOut:
    card = cards.get_card(ctx, ehc_id)
    return PinClearedOut(ehc_id=card.ehc_id, cleared=service.clear_pin(ctx, card, body.reason))


@router.post("/api/v1/qr/second-factor/sms", response_model=SmsSentOut,
             summary="Text a one-time code to the holder of a scanned static code (the second factor)")
def send_sms_code(body: SmsRequestIn, ctx: QRVerifier, response: Response) -> SmsSentOut:
    sent = service.send_sms_code(ctx, service.card_of_static_code(ctx, body.code))
    response.headers["Cache-Control"] = "no-store"
    return SmsSentOut(masked_phone=sent.masked_phone, expires_at=sent.expires_at, resend_after=sent.resend_after)
