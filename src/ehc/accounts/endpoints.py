from __future__ import annotations

from fastapi import APIRouter

from ..kit.deps import DbSession
from . import service
from .schemas import StaffSignIn, TokenOut

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])


@router.post("/staff/token", response_model=TokenOut, summary="Staff sign-in: a bearer token for one shift")
def staff_token(body: StaffSignIn, session: DbSession) -> TokenOut:
    token, account = service.sign_in_staff(session, body.username, body.password)
    return TokenOut(access_token=token, expires_in=int(service.TOKEN_LIFETIME.total_seconds()),
                    role=account.role, institution_id=account.institution_id)
