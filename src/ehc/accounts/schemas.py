from __future__ import annotations

from pydantic import BaseModel, Field


class StaffSignIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=200)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str
    institution_id: str | None
