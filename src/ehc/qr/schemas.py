"""QR API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DynamicCodeOut(BaseModel):
    text: str = Field(description="the EHC1: code text (EHCM1: with ?payment=); render it as a QR symbol at level M")
    expires_at: datetime
    refresh_after: int = Field(description="seconds after which to draw a fresh code")
    payment_channel: str | None = Field(default=None, description="the channel of the payment part, two-in-one only")


class SecondFactorIn(BaseModel):
    """One of the two: the card's PIN, or the code texted by POST /api/v1/qr/second-factor/sms."""

    pin: str | None = Field(default=None, max_length=16, description="the card's 6-digit PIN")
    sms_code: str | None = Field(default=None, max_length=16, description="the 6-digit code sent to the holder")


class VerifyIn(BaseModel):
    code: str = Field(max_length=1024, description="the scanned text, EHC1: or EHCM1:")
    scene: str = Field(max_length=7, description="care step code (docs/codes.md), e.g. 0101011")
    channel: str = Field(max_length=4, description="channel code, e.g. 0100 (window)")
    terminal_id: str | None = Field(default=None, max_length=32)
    department: str | None = Field(default=None, max_length=8)
    second_factor: SecondFactorIn | None = Field(
        default=None, description="a static code at payment or reports steps needs one (docs/qr-format.md §9.1)")


class VerifiedHolderOut(BaseModel):
    name: str | None
    sex: str
    birth_date: str | None
    document_type: str | None
    document_number: str | None


class VerifyOut(BaseModel):
    ehc_id: str
    status: str
    status_code: str
    code_type: int = Field(description="0 dynamic, 1 static")
    national_plaintext: str = Field(description="EHCID:type[:validity] (docs/qr-format.md §13)")
    holder: VerifiedHolderOut
    use_id: int


class CardUseOut(BaseModel):
    at: datetime
    scene: str
    scene_label: str
    channel: str
    institution_id: str | None
    terminal_id: str | None
    department: str | None
    code_type: int = Field(description="0 dynamic, 1 static")
