from __future__ import annotations

from fastapi import APIRouter

from ..institutions.auth import CommissionAdmin, ManagedInstitution
from ..kit.clock import utcnow
from ..kit.deps import DbSession
from . import service
from .schemas import (
    CommissionStaffIn,
    StaffChanges,
    StaffIn,
    StaffOut,
    StaffSignIn,
    TokenOut,
)

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])


@router.post("/staff/token", response_model=TokenOut, summary="Staff sign-in: a bearer token for one shift")
def staff_token(body: StaffSignIn, session: DbSession) -> TokenOut:
    token, account = service.sign_in_staff(session, body.username, body.password)
    return TokenOut(access_token=token, expires_in=int(service.TOKEN_LIFETIME.total_seconds()),
                    role=account.role, institution_id=account.institution_id)


# -- staff management -----------------------------------------------------------------------------
# An institution's admin (or a platform admin) manages the institution's staff; a platform admin
# manages the health commission's. Reach is checked by institutions/auth.py (404 out of reach).

staff_router = APIRouter(prefix="/api/v1", tags=["staff"])


def _staff_out(account) -> StaffOut:  # noqa: ANN001
    locked = account.locked_until is not None and account.locked_until > utcnow()
    return StaffOut(id=account.id, username=account.username, display_name=account.display_name, role=account.role,
                    institution_id=account.institution_id, region_code=account.region_code, active=account.active,
                    locked=locked, created_at=account.created_at)


def _staff_changes(body: StaffChanges) -> dict:
    given = body.model_fields_set
    changes = {name: getattr(body, name) for name in given if name != "region_code"}
    if "region_code" in given:
        if body.region_code is None:
            changes["clear_region"] = True
        else:
            changes["region_code"] = body.region_code
    return changes


@staff_router.post("/institutions/{institution_id}/staff", response_model=StaffOut, status_code=201,
                   summary="Create a staff account at the institution")
def create_institution_staff(body: StaffIn, scoped: ManagedInstitution) -> StaffOut:
    return _staff_out(service.create_institution_staff(scoped.ctx.session, scoped.institution.id,
                                                       **body.model_dump()))


@staff_router.get("/institutions/{institution_id}/staff", response_model=list[StaffOut])
def list_institution_staff(scoped: ManagedInstitution) -> list[StaffOut]:
    return [_staff_out(a) for a in service.list_staff(scoped.ctx.session, scoped.institution.id)]


@staff_router.get("/institutions/{institution_id}/staff/{staff_id}", response_model=StaffOut)
def get_institution_staff(staff_id: str, scoped: ManagedInstitution) -> StaffOut:
    return _staff_out(service.institution_staff(scoped.ctx.session, scoped.institution.id, staff_id))


@staff_router.patch("/institutions/{institution_id}/staff/{staff_id}", response_model=StaffOut,
                    summary="Enable, disable, rename or change the role of a staff member")
def update_institution_staff(staff_id: str, body: StaffChanges, scoped: ManagedInstitution) -> StaffOut:
    account = service.institution_staff(scoped.ctx.session, scoped.institution.id, staff_id)
    return _staff_out(service.update_staff(scoped.ctx.session, scoped.ctx.actor, account, **_staff_changes(body)))


@staff_router.post("/commission/staff", response_model=StaffOut, status_code=201,
                   summary="Create a health-commission account (regional operator, auditor, platform admin)")
def create_commission_staff(body: CommissionStaffIn, ctx: CommissionAdmin) -> StaffOut:
    return _staff_out(service.create_commission_staff(ctx.session, **body.model_dump()))


@staff_router.get("/commission/staff", response_model=list[StaffOut])
def list_commission_staff(ctx: CommissionAdmin) -> list[StaffOut]:
    return [_staff_out(a) for a in service.list_staff(ctx.session, None)]


@staff_router.get("/commission/staff/{staff_id}", response_model=StaffOut)
def get_commission_staff(staff_id: str, ctx: CommissionAdmin) -> StaffOut:
    return _staff_out(service.commission_staff(ctx.session, staff_id))


@staff_router.patch("/commission/staff/{staff_id}", response_model=StaffOut,
                    summary="Enable, disable, rename, re-role or re-region a health-commission account")
def update_commission_staff(staff_id: str, body: StaffChanges, ctx: CommissionAdmin) -> StaffOut:
    account = service.commission_staff(ctx.session, staff_id)
    return _staff_out(service.update_staff(ctx.session, ctx.actor, account, **_staff_changes(body)))
