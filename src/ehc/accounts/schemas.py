from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class StaffSignIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=200)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str
    institution_id: str | None
    failures_before_sign_in: int = Field(0, description="wrong passwords for this account since its previous sign-in")
    last_failure_at: datetime | None = Field(None, description="when the latest of them was")


class ResidentCodeIn(BaseModel):
    phone: str = Field(max_length=20, examples=["13912345678"])


class ResidentCodeOut(BaseModel):
    """The same answer whether or not a card is registered with the phone."""

    sent: bool = True
    expires_in: int = Field(description="Seconds the code stays valid")
    resend_after: int = Field(description="Seconds before another code may be requested")


class ResidentSignIn(BaseModel):
    """Phone and either a one-time code or a password."""

    phone: str = Field(max_length=20, examples=["13912345678"])
    code: str | None = Field(None, max_length=12, description="The 6-digit code sent by SMS")
    password: str | None = Field(None, max_length=200)
    document_last4: str | None = Field(
        None, max_length=8,
        description="Only when several card holders share the phone: last 4 characters of your document number")


class ResidentTokenOut(BaseModel):
    access_token: str | None = Field(description="The bearer token; null when it was set as the ehc_resident cookie")
    token_type: str = "bearer"
    expires_in: int
    ehc_id: str = Field(description="The signed-in resident's own card")
    method: str = Field(description="otp or password")


# -- staff management -----------------------------------------------------------------------------

class StaffIn(BaseModel):
    """A new staff account. The admin chooses the first password and hands it over in person."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64, examples=["wang.clerk"])
    password: str = Field(max_length=200, description="At least 10 characters")
    role: str = Field(max_length=32, description="Institution staff: window_clerk, doctor, nurse, family_doctor, "
                                                  "cashier, institution_admin")
    display_name: str | None = Field(None, max_length=64, examples=["王窗口"])
    department_code: str | None = Field(None, max_length=8, examples=["0300"],
                                        description="Institution staff: one of the institution's departments")


class CommissionStaffIn(StaffIn):
    role: str = Field(max_length=32, description="regional_operator, auditor or platform_admin")
    region_code: str | None = Field(None, max_length=6, description="GB/T 2260; required for a regional operator")


class StaffChanges(BaseModel):
    """Only the fields given change. ``active: false`` disables the account and ends its sessions."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    display_name: str | None = Field(None, max_length=64)
    role: str | None = Field(None, max_length=32)
    region_code: str | None = Field(None, max_length=6, description="Commission staff only; null clears it")
    department_code: str | None = Field(None, max_length=8, description="Institution staff: one of the "
                                        "institution's departments (department-level record grants); null clears it")


class StaffOut(BaseModel):
    """A staff account as its managers see it: never its password hash."""

    id: str
    username: str
    display_name: str
    role: str
    institution_id: str | None
    region_code: str | None
    department_code: str | None = None
    active: bool
    failed_sign_ins: int = Field(description="Wrong passwords for this account since its last sign-in, from any source")
    slowed_down: bool = Field(description="Many sources are guessing at once: every source waits between tries for now")
    created_at: datetime
