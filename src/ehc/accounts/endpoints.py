from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from ..kit.clock import utcnow
from ..kit.context import Actor, Ctx
from ..kit.deps import DbSession, get_platform
from ..kit.errors import Problem
from ..kit.http import safe_local_path
from ..institutions import service as institutions
from . import residents, service
from .auth import CommissionAdmin, ManagedStaff, _bearer, clear_resident_cookie, resident_channel, set_resident_cookie
from .schemas import (
    CommissionStaffIn,
    ResidentCodeIn,
    ResidentCodeOut,
    ResidentSignIn,
    ResidentTokenOut,
    StaffChanges,
    StaffIn,
    StaffOut,
    StaffSignIn,
    TokenOut,
)

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])


def _visitor(request: Request, session: DbSession) -> Ctx:
    """Sign-in runs as an anonymous visitor: a stale cookie must never stand in the way of signing in."""
    return get_platform(request).ctx(session, Actor.anonymous(resident_channel(request)))


Visitor = Annotated[Ctx, Depends(_visitor)]


@router.post("/staff/token", response_model=TokenOut, summary="Staff sign-in: a bearer token for one shift",
             responses={429: {"description": "sign_in_slowed: too many wrong passwords from this source; Retry-After"}})
def staff_token(body: StaffSignIn, ctx: Visitor, request: Request) -> TokenOut:
    source = request.client.host if request.client else None
    token, account = service.sign_in_staff(ctx, body.username, body.password, source)
    return TokenOut(access_token=token, expires_in=int(service.TOKEN_LIFETIME.total_seconds()),
                    role=account.role, institution_id=account.institution_id,
                    failures_before_sign_in=account.failures_before_sign_in,
                    last_failure_at=account.failure_last_before_sign_in)


# -- residents ------------------------------------------------------------------------------------
# Rules (who is who on a shared phone, code limits, lock-out) live in accounts/residents.py.


@router.post("/resident/otp", response_model=ResidentCodeOut, status_code=202,
             summary="Resident sign-in, step 1: text a one-time code to the phone",
             responses={429: {"description": "otp_rate_limited (one a minute) or otp_daily_limit_reached (10 a day)"}})
def resident_code(body: ResidentCodeIn, ctx: Visitor) -> ResidentCodeOut:
    # A refusal with retry_after (rate limit, lock-out) answers 429/401 with a Retry-After header (kit/http).
    sent = residents.request_code(ctx, body.phone)
    return ResidentCodeOut(expires_in=sent.expires_in, resend_after=sent.resend_after)


async def _sign_in_body(request: Request) -> tuple[ResidentSignIn, bool, str | None]:
    """JSON from the app, or a form post from a page (which then gets the cookie and a redirect)."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            fields = {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
            return ResidentSignIn.model_validate(fields), True, fields.get("next")
        return ResidentSignIn.model_validate_json(await request.body() or b"{}"), False, None
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())), "code": e.get("type", "invalid"),
                   "message": e.get("msg", "")} for e in exc.errors()]
        raise Problem("The sign-in request is not valid.", code="validation_failed", status=422,
                      title="Invalid request", errors=errors) from None


_SIGN_IN_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": ResidentSignIn.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": {
            **ResidentSignIn.model_json_schema(),
            "properties": {**ResidentSignIn.model_json_schema()["properties"],
                           "next": {"type": "string", "description": "Where to go after signing in (a path)"}},
        }},
    },
}


def _safe_next(target: str | None) -> str:
    return safe_local_path(target)


@router.post("/resident/token", response_model=ResidentTokenOut, openapi_extra={"requestBody": _SIGN_IN_BODY},
             summary="Resident sign-in, step 2: phone + code (or password) for a bearer token or the ehc_resident cookie")
def resident_token(request: Request, response: Response, ctx: Visitor,
                   parsed: Annotated[tuple, Depends(_sign_in_body)], cookie: bool = False) -> Any:
    body, from_form, next_page = parsed
    if body.code:
        signed = residents.sign_in_with_code(ctx, body.phone, body.code, body.document_last4)
    elif body.password:
        signed = residents.sign_in_with_password(ctx, body.phone, body.password, body.document_last4)
    else:
        raise Problem("Give the code sent to your phone, or your password.", code="credentials_required",
                      status=422, title="Invalid request")
    if from_form and next_page is not None:
        redirect = RedirectResponse(_safe_next(next_page), status_code=303)
        _set_resident_cookie(redirect, request, ctx, signed)
        return redirect
    if cookie or from_form:
        _set_resident_cookie(response, request, ctx, signed)
    return ResidentTokenOut(access_token=None if (cookie or from_form) else signed.token,
                            expires_in=signed.expires_in, ehc_id=signed.ehc_id, method=signed.method)


def _set_resident_cookie(response: Response, request: Request, ctx: Ctx, signed: residents.SignedIn) -> None:
    set_resident_cookie(response, request, signed.token, signed.expires_in,
                        production=ctx.settings.environment == "production")


@router.post("/resident/sign-out", status_code=204, response_class=Response,
             summary="End the resident's sign-in (bearer token or cookie)")
def resident_sign_out(request: Request, session: DbSession) -> Response:
    token = _bearer(request)
    if token:
        residents.sign_out(session, token)
    answer = Response(status_code=204)
    clear_resident_cookie(answer)
    return answer


# -- staff management -----------------------------------------------------------------------------
# An institution's admin (or a platform admin) manages the institution's staff; a platform admin
# manages the health commission's. Reach is the registry's rule (accounts/auth.py; 404 out of reach).

staff_router = APIRouter(prefix="/api/v1", tags=["staff"])


def _staff_out(account) -> StaffOut:  # noqa: ANN001
    slowed = account.locked_until is not None and account.locked_until > utcnow()
    return StaffOut(id=account.id, username=account.username, display_name=account.display_name, role=account.role,
                    institution_id=account.institution_id, region_code=account.region_code,
                    department_code=account.department_code, active=account.active,
                    failed_sign_ins=account.failed_attempts, slowed_down=slowed, created_at=account.created_at)


def _staff_changes(body: StaffChanges) -> dict:
    given = body.model_fields_set
    changes = {name: getattr(body, name) for name in given if name not in ("region_code", "department_code")}
    if "department_code" in given:
        if body.department_code is None:
            changes["clear_department"] = True
        else:
            changes["department_code"] = body.department_code
    if "region_code" in given:
        if body.region_code is None:
            changes["clear_region"] = True
        else:
            changes["region_code"] = body.region_code
    return changes


@staff_router.post("/institutions/{institution_id}/staff", response_model=StaffOut, status_code=201,
                   summary="Create a staff account at the institution")
def create_institution_staff(body: StaffIn, scoped: ManagedStaff) -> StaffOut:
    given = body.model_dump()
    given["department_code"] = institutions.department_of(scoped.ctx.session, scoped.institution_id,
                                                          body.department_code, field="department_code")
    return _staff_out(service.create_institution_staff(scoped.ctx, scoped.institution_id, **given))


@staff_router.get("/institutions/{institution_id}/staff", response_model=list[StaffOut])
def list_institution_staff(scoped: ManagedStaff) -> list[StaffOut]:
    return [_staff_out(a) for a in service.list_staff(scoped.ctx, scoped.institution_id)]


@staff_router.get("/institutions/{institution_id}/staff/{staff_id}", response_model=StaffOut)
def get_institution_staff(staff_id: str, scoped: ManagedStaff) -> StaffOut:
    return _staff_out(service.institution_staff(scoped.ctx, scoped.institution_id, staff_id))


@staff_router.patch("/institutions/{institution_id}/staff/{staff_id}", response_model=StaffOut,
                    summary="Enable, disable, rename or change the role of a staff member")
def update_institution_staff(staff_id: str, body: StaffChanges, scoped: ManagedStaff) -> StaffOut:
    account = service.institution_staff(scoped.ctx, scoped.institution_id, staff_id)
    changes = _staff_changes(body)
    if "department_code" in changes:
        changes["department_code"] = institutions.department_of(scoped.ctx.session, scoped.institution_id,
                                                                body.department_code, field="department_code")
    return _staff_out(service.update_staff(scoped.ctx, account, **changes))


@staff_router.post("/commission/staff", response_model=StaffOut, status_code=201,
                   summary="Create a health-commission account (regional operator, auditor, platform admin)")
def create_commission_staff(body: CommissionStaffIn, ctx: CommissionAdmin) -> StaffOut:
    return _staff_out(service.create_commission_staff(ctx, **body.model_dump(exclude={"department_code"})))


@staff_router.get("/commission/staff", response_model=list[StaffOut])
def list_commission_staff(ctx: CommissionAdmin) -> list[StaffOut]:
    return [_staff_out(a) for a in service.list_staff(ctx, None)]


@staff_router.get("/commission/staff/{staff_id}", response_model=StaffOut)
def get_commission_staff(staff_id: str, ctx: CommissionAdmin) -> StaffOut:
    return _staff_out(service.commission_staff(ctx, staff_id))


@staff_router.patch("/commission/staff/{staff_id}", response_model=StaffOut,
                    summary="Enable, disable, rename, re-role or re-region a health-commission account")
def update_commission_staff(staff_id: str, body: StaffChanges, ctx: CommissionAdmin) -> StaffOut:
    account = service.commission_staff(ctx, staff_id)
    return _staff_out(service.update_staff(ctx, account, **_staff_changes(body)))
