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


# -- staff management -----------------------------------------------------------------------------

class StaffIn(BaseModel):
    """A new staff account. The admin chooses the first password and hands it over in person."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64, examples=["wang.clerk"])
    password: str = Field(max_length=200, description="At least 10 characters")
    role: str = Field(max_length=32, description="Institution staff: window_clerk, doctor, nurse, family_doctor, "
                                                  "cashier, institution_admin")
    display_name: str | None = Field(None, max_length=64, examples=["王窗口"])


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


class StaffOut(BaseModel):
    """A staff account as its managers see it: never its password hash."""

    id: str
    username: str
    display_name: str
    role: str
    institution_id: str | None
    region_code: str | None
    active: bool
    locked: bool = Field(description="Locked for a while after repeated failed sign-ins")
    created_at: datetime
