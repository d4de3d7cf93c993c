"""What every staff page shares: who is signed in (the ``ehc_staff`` cookie) and with which roles, the
API's own role rules applied to a page, the page frame, refusals shown against a form."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from ...accounts import service as accounts
from ...accounts.auth import STAFF_COOKIE, page_actor
from ...accounts.service import StaffAccount
from ...appointments.auth import DayListReader, Scheduler
from ...institutions import service as institutions
from ...cards.auth import CardStaff
from ...institutions.auth import InstitutionAdmin
from ...institutions.service import KIND_LABELS, level_label
from ...institutions.service import Institution
from ...kit.context import Ctx
from ...kit.deps import DbSession, get_platform
from ...kit.errors import Problem
from ...kit.http import safe_local_path
from ...kit.roles import INSTITUTION_ROLES, Role
from ...family_doctors.auth import ContractDesk as FamilyDoctorDesk
from ...payments.auth import BillReader, Finance
from ...qr.auth import QRPrinter
from ...qr.service import may_monitor
from .. import forms, i18n
from ..core import Redirect, client_address
from ..forms import FormState, page


# Who reads the statistics console (``statistics.auth.StatsReader``).
STATISTICS_ROLES = frozenset({Role.REGIONAL_OPERATOR.value, Role.AUDITOR.value, Role.PLATFORM_ADMIN.value})

# Institution roles in the order a form offers them (the most common first).
ROLE_ORDER = (Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, Role.FAMILY_DOCTOR, Role.CASHIER, Role.INSTITUTION_ADMIN)
assert set(ROLE_ORDER) == set(INSTITUTION_ROLES)


def _rule(annotated: Any) -> Callable[[Ctx], Ctx]:
    """The role check behind a domain's typed dependency (``Annotated[Ctx, Depends(check)]``), to
    apply the API's own rule to the page's unit of work."""
    dependency = get_args(annotated)[1].dependency
    return getattr(dependency, "check", dependency)  # ``kit.auth``'s rules are async dependencies over a sync check


admin_rule = _rule(InstitutionAdmin)
rule_of = _rule


# -- who is signed in -------------------------------------------------------------------------

@dataclass
class Staff:
    """A staff member on a page: their unit of work, their account and (if any) their institution."""

    ctx: Ctx
    account: StaffAccount
    institution: Institution | None

    @property
    def is_admin(self) -> bool:
        return bool(self.ctx.actor.roles & {Role.INSTITUTION_ADMIN.value, Role.PLATFORM_ADMIN.value})

    def header(self, t: i18n.Translator) -> dict[str, Any]:
        return {"label": t("account.signed_in_as", name=self.account.display_name),
                "role": role_label(t, self.account.role), "sign_out": "/staff/sign-out", "admin": self.is_admin,
                "card_uses": may_monitor(self.ctx.actor.roles), "mpi_reviews": may_review(self.ctx.actor.roles),
                "family_doctors": may_use_rule(self.ctx, FamilyDoctorDesk),
                "statistics": bool(self.ctx.actor.roles & STATISTICS_ROLES),
                "desk": may_use_desk(self), "payments": may_use_rule(self.ctx, BillReader),
                "finance": may_use_rule(self.ctx, Finance)}


def role_label(t: i18n.Translator, role: str | None) -> str:
    if not role:
        return ""
    return ", ".join(t(f"roles.{r}") if t.has(f"roles.{r}") else r for r in role.split(","))


def _safe_next(target: str | None) -> str:
    """Only a staff page of this site: never an open redirect."""
    return safe_local_path(target, within="/staff", default="/staff", excluding=("/staff/sign-",))


def _sign_in_url(request: Request) -> str:
    path = request.url.path
    return "/staff/sign-in" if path == "/staff" else f"/staff/sign-in?next={path}"


def signed_in_staff(request: Request, session: DbSession) -> Staff:
    request.state.db_session = session
    token = request.cookies.get(STAFF_COOKIE)
    actor = page_actor(request, session, "staff")  # the API's resolution of the same token
    if actor is None:
        raise Redirect(_sign_in_url(request), clear_cookies=(STAFF_COOKIE,) if token else ())
    platform = get_platform(request)
    platform.check_rate(actor, client_address(request))  # the API's allowance per signed-in person
    ctx = platform.ctx(session, actor)
    account = accounts.get_staff(ctx, actor.id)
    institution = institutions.find_institution(session, account.institution_id) if account.institution_id else None
    return Staff(ctx, account, institution)


StaffPage = Annotated[Staff, Depends(signed_in_staff)]


def page_under(api_rule: Any) -> Any:
    """A page's dependency: the signed-in staff member, let in only by the API's own rule for the same
    work (a domain's typed dependency, ``Annotated[Ctx, Depends(check)]``), so the page and its API
    door refuse alike (403 role_not_allowed)."""
    check = _rule(api_rule)

    def admitted(staff: StaffPage) -> Staff:
        check(staff.ctx)
        return staff

    return Annotated[Staff, Depends(admitted)]


AdminPage = page_under(InstitutionAdmin)


@dataclass
class Managed:
    staff: Staff
    institution: Institution

    @property
    def ctx(self) -> Ctx:
        return self.staff.ctx

    @property
    def base(self) -> str:
        return f"/staff/institution/{self.institution.id}"


def managed(institution_id: str, staff: AdminPage) -> Managed:
    return Managed(staff, institutions.managed_institution(staff.ctx, institution_id))


ManagedPage = Annotated[Managed, Depends(managed)]


def staff_page(request: Request, staff: Staff, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    t = i18n.translator(i18n.negotiate(request))
    account = {**staff.header(t), "qr_print": may_print(staff), **appointment_links(staff)}
    return page(request, staff.ctx, template, status_code, area="staff", wide=True, account=account, **context)


def admin_page(request: Request, scope: Managed, template: str, tab: str, status_code: int = 200,
               **context: Any) -> HTMLResponse:
    t = i18n.translator(i18n.negotiate(request))
    return staff_page(request, scope.staff, template, status_code, nav="staff_institution", tab=tab,
                      institution=institution_view(t, scope.institution), base=scope.base, **context)


def institution_view(t: i18n.Translator, institution: Institution) -> dict[str, Any]:
    column = 1 if t.lang == "zh" else 0
    kind = KIND_LABELS.get(institution.kind)
    return {
        "id": institution.id,
        "name": institution.name,
        "uscc": institution.uscc,
        "kind": kind[column] if kind else institution.kind,
        "level": level_label(institution.level)[column],
        "region_code": institution.region_code,
    }


# A department's or terminal's own name: not the person-name message the apply form gives.
LOCAL_NAME = {"name_invalid": "local_name_invalid"}


# Refusals that name no field, put against the input they are about.
CODE_FIELDS = {"password_too_short": "password", "username_taken": "username", "department_code_taken": "code",
               "terminal_id_taken": "terminal_id"}


def form_failed(session, request: Request, problem: Problem, values: dict[str, str], form: str,  # noqa: ANN001
                fields: tuple[str, ...] = (), aliases: dict[str, str] | None = None) -> FormState:
    """Undo whatever the service got to, and say what was wrong in the page's language."""
    session.rollback()
    t = i18n.translator(i18n.negotiate(request))
    return forms.problem_state(t, problem, values, form=form, fields=fields, aliases=aliases, codes=LOCAL_NAME,
                               code_fields=CODE_FIELDS)


desk_rule = _rule(CardStaff)  # the API's rule to find and read cards: the card desk opens to it


def passes(rule: Callable[[Ctx], Ctx], staff: Staff) -> bool:
    """Whether the API's ``rule`` lets this staff member through (to show a link or a form)."""
    return _lets_through(rule, staff.ctx)


def _lets_through(rule: Callable[[Ctx], Ctx], ctx: Ctx) -> bool:
    try:
        rule(ctx)
    except Problem:
        return False
    return True


def may_use_rule(ctx: Ctx, annotated: Any) -> bool:
    """Whether the API's role rule behind ``annotated`` lets this staff member through."""
    return _lets_through(_rule(annotated), ctx)


def appointment_links(staff: Staff) -> dict[str, bool]:
    """Which appointment pages the staff member's role opens (the API's rules)."""
    return {"appt_desk": may_use_rule(staff.ctx, DayListReader), "appt_schedule": may_use_rule(staff.ctx, Scheduler)}
def may_use_desk(staff: Staff) -> bool:
    return passes(desk_rule, staff)


print_rule = _rule(QRPrinter)  # the API's rule for static.png/.svg/.pdf: window work
_EHC_ID = re.compile(r"[0-9A-F]{64}")


def may_print(staff: Staff) -> bool:
    return passes(print_rule, staff)


def may_review(roles: frozenset[str]) -> bool:
    return bool(roles & {Role.REGIONAL_OPERATOR.value, Role.PLATFORM_ADMIN.value, Role.INSTITUTION_ADMIN.value})
