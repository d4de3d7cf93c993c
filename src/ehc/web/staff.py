"""Staff pages: sign-in, the staff home, and the institution admin's pages (departments, terminals,
staff; keys live in ``web/keys.py``).

The fourth door into the same services as the API: a page finds out who is signed in from the
``ehc_staff`` cookie (the bearer token of ``POST /api/v1/auth/staff/token``, HttpOnly, SameSite=Lax),
applies the very role rule of the API's typed dependency (``institutions.auth.InstitutionAdmin``)
and the service's reach (``institutions.service.managed_institution``), then calls the service. A
role that may not manage institutions gets a 403 page; an institution out of reach is "not found",
exactly as the API answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..accounts import service as accounts
from ..accounts.auth import _ROLE_CHANNEL
from ..accounts.models import StaffAccount
from ..kit.roles import INSTITUTION_ROLES, Role
from ..institutions import service as institutions
from ..institutions.auth import InstitutionAdmin
from ..institutions.codes import DEPARTMENTS, KIND_LABELS, TERMINAL_LABELS, TERMINAL_TYPE, TerminalRole, \
    department_label, level_label
from ..institutions.models import Institution
from ..kit.clock import utcnow
from ..kit.http import safe_local_path
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.deps import DbSession, get_platform
from ..kit.errors import Problem, Unauthorized
from ..cards import service as cards
from ..cards.models import CardStatus
from ..qr.auth import QRPrinter
from ..qr.uses import may_monitor
from . import forms, i18n
from .forms import FormState, page, require_csrf, see_other
from .pages import CHINA, PageRoute, Redirect, WebsiteCtx, client_address

STAFF_COOKIE = "ehc_staff"  # read by accounts.auth._bearer too: the API and the pages share the sign-in
# Institution roles in the order a form offers them (the most common first).
ROLE_ORDER = (Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, Role.FAMILY_DOCTOR, Role.CASHIER, Role.INSTITUTION_ADMIN)
assert set(ROLE_ORDER) == set(INSTITUTION_ROLES)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _rule(annotated: Any) -> Callable[[Ctx], Ctx]:
    """The role check behind a domain's typed dependency (``Annotated[Ctx, Depends(check)]``), to
    apply the API's own rule to the page's unit of work."""
    return get_args(annotated)[1].dependency


admin_rule = _rule(InstitutionAdmin)


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
                "card_uses": may_monitor(self.ctx.actor.roles), "mpi_reviews": may_review(self.ctx.actor.roles)}


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


def staff_actor(session, token: str | None) -> Actor | None:  # noqa: ANN001
    """The staff member behind a page's ``ehc_staff`` cookie, on the channel of their role."""
    if not token:
        return None
    try:
        actor = accounts.actor_for_token(session, token, Channel.WINDOW)
    except Unauthorized:
        return None
    if actor.kind != "staff":
        return None
    role = next(iter(actor.roles))
    return replace(actor, channel=_ROLE_CHANNEL.get(Role(role), Channel.WINDOW))


def signed_in_staff(request: Request, session: DbSession) -> Staff:
    request.state.db_session = session
    token = request.cookies.get(STAFF_COOKIE)
    actor = staff_actor(session, token)
    if actor is None:
        raise Redirect(_sign_in_url(request), clear_cookies=(STAFF_COOKIE,) if token else ())
    platform = get_platform(request)
    platform.check_rate(actor, client_address(request))  # the API's allowance per signed-in person
    account = accounts.get_staff(session, actor.id)
    institution = institutions.find_institution(session, account.institution_id) if account.institution_id else None
    return Staff(platform.ctx(session, actor), account, institution)


StaffPage = Annotated[Staff, Depends(signed_in_staff)]


def admin_staff(staff: StaffPage) -> Staff:
    admin_rule(staff.ctx)  # 403 role_not_allowed, as the API answers
    return staff


AdminPage = Annotated[Staff, Depends(admin_staff)]


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
    account = {**staff.header(t), "qr_print": may_print(staff)}
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


# -- sign-in ----------------------------------------------------------------------------------

def _sign_in_page(request: Request, ctx: Ctx, state: FormState | None = None, status_code: int = 200,
                  next_page: str = "") -> HTMLResponse:
    return page(request, ctx, "staff_sign_in.html", status_code, area="staff",
                state=state or FormState(), next_page=_safe_next(next_page) if next_page else "")


@router.get("/staff/sign-in", response_class=HTMLResponse)
def staff_sign_in_form(request: Request, ctx: WebsiteCtx, next: str = "") -> Response:  # noqa: A002
    if staff_actor(ctx.session, request.cookies.get(STAFF_COOKIE)) is not None:
        return see_other(request, _safe_next(next))
    return _sign_in_page(request, ctx, next_page=next)


@router.post("/staff/sign-in", response_class=HTMLResponse)
def staff_sign_in(
    request: Request,
    ctx: WebsiteCtx,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=300)] = "",  # noqa: A002
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, ctx, csrf_token)
    t = i18n.for_request(request)
    values = {"username": username.strip()}
    state = forms.missing(t, {**values, "password": password}, ("username", "password"))
    if state.failed:
        state.values = values
        return _sign_in_page(request, ctx, state, 422, next)
    try:
        token, account = accounts.sign_in_staff(ctx.session, values["username"], password)
        ctx.session.commit()
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(values=values)
        state.add("", forms.message(t, problem.code, forms.problem_params(problem), problem.detail))
        return _sign_in_page(request, ctx, state, problem.status, next)
    answer = see_other(request, _safe_next(next))
    production = ctx.settings.environment == "production"
    answer.set_cookie(STAFF_COOKIE, token, max_age=int(accounts.TOKEN_LIFETIME.total_seconds()), path="/",
                      httponly=True, samesite="lax", secure=production or request.url.scheme == "https")
    return answer


@router.post("/staff/sign-out")
def staff_sign_out(request: Request, ctx: WebsiteCtx, csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        accounts.revoke_token(ctx.session, token)
        ctx.session.commit()
    answer = see_other(request, "/staff/sign-in", "signed_out")
    answer.delete_cookie(STAFF_COOKIE, path="/", httponly=True, samesite="lax")
    return answer


# -- printing a card's static QR code -----------------------------------------------------------

print_rule = _rule(QRPrinter)  # the API's rule for static.png/.svg/.pdf: window work
_EHC_ID = re.compile(r"[0-9A-F]{64}")


def may_print(staff: Staff) -> bool:
    try:
        print_rule(staff.ctx)
    except Problem:
        return False
    return True


def printer_staff(staff: StaffPage) -> Staff:
    print_rule(staff.ctx)  # 403 role_not_allowed, as the API answers
    return staff


PrinterPage = Annotated[Staff, Depends(printer_staff)]


@router.get("/staff/print", response_class=HTMLResponse)
def print_lookup(request: Request, staff: PrinterPage,
                 ehc_id: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Type or scan a card's EHC ID, then print its static code."""
    typed = "".join(ehc_id.split()).upper()
    if typed and _EHC_ID.fullmatch(typed):
        return see_other(request, f"/staff/cards/{typed}/print")
    t = i18n.for_request(request)
    error = t("staff_print.id_invalid") if typed else ""
    return staff_page(request, staff, "staff_card_print.html", 422 if error else 200, nav="staff_print",
                      card=None, typed=ehc_id, error=error)


@router.get("/staff/cards/{ehc_id}/print", response_class=HTMLResponse)
def print_card(request: Request, staff: PrinterPage, ehc_id: str) -> HTMLResponse:
    """The card's static code, to print as PNG, SVG or an A7 PDF label (the QR API draws them)."""
    card = cards.get_card(staff.ctx, ehc_id)  # no personal data on this page: the PDF label's read is audited
    t = i18n.for_request(request)
    base = f"/api/v1/cards/{card.ehc_id}/qr/static"
    view = {
        "ehc_id": card.ehc_id,
        "ehc_id_groups": [card.ehc_id[i:i + 8] for i in range(0, 64, 8)],
        "status_label": t(f"status.{card.status}"),
        "status": card.status,
        "active": card.status == CardStatus.NORMAL.value,
        "issued": t.date(card.issued_at.astimezone(CHINA).date()),
        "png": base + ".png", "svg": base + ".svg", "pdf": base + ".pdf",
    }
    return staff_page(request, staff, "staff_card_print.html", nav="staff_print", card=view, typed="", error="")


# -- staff home -------------------------------------------------------------------------------

@router.get("/staff", response_class=HTMLResponse)
def staff_home(request: Request, staff: StaffPage) -> HTMLResponse:
    t = i18n.for_request(request)
    account = staff.account
    return staff_page(request, staff, "staff_home.html", nav="staff_home", me={
        "display_name": account.display_name,
        "username": account.username,
        "role": role_label(t, account.role),
        "institution": institution_view(t, staff.institution) if staff.institution else None,
        "region_code": account.region_code,
    })


@router.get("/staff/institution", response_class=HTMLResponse)
def institution_entry(request: Request, staff: AdminPage) -> Response:
    """An institution's admin goes to their institution; a platform admin picks one."""
    if staff.institution is not None:
        return see_other(request, f"/staff/institution/{staff.institution.id}")
    items, total = institutions.list_institutions(staff.ctx, limit=institutions.MAX_PAGE)
    t = i18n.for_request(request)
    return staff_page(request, staff, "staff_institutions.html", nav="staff_institution",
                      institutions=[institution_view(t, i) for i in items], total=total)


@router.get("/staff/institution/{institution_id}", response_class=HTMLResponse)
def institution_overview(request: Request, scope: ManagedPage) -> HTMLResponse:
    session = scope.ctx.session
    terminals = institutions.list_terminals(session, scope.institution)
    staff = accounts.list_staff(session, scope.institution.id)
    counts = {
        "departments": len(institutions.list_departments(session, scope.institution)),
        "terminals": sum(1 for x in terminals if x.status == "active"),
        "staff": sum(1 for x in staff if x.active),
    }
    return admin_page(request, scope, "admin_overview.html", "overview", counts=counts)


# -- departments ------------------------------------------------------------------------------

def _department_options(t: i18n.Translator) -> list[tuple[str, str]]:
    column = 1 if t.lang == "zh" else 0
    return [(code, f"{code} · {labels[column]}") for code, labels in DEPARTMENTS.items()]


def _departments_page(request: Request, scope: Managed, state: FormState | None = None,
                      status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    column = 1 if t.lang == "zh" else 0
    session = scope.ctx.session
    departments = institutions.list_departments(session, scope.institution)
    used: dict[str, int] = {}
    for terminal in institutions.list_terminals(session, scope.institution):
        if terminal.department_id:
            used[terminal.department_id] = used.get(terminal.department_id, 0) + 1
    rows = [{"code": d.code, "name": d.name, "standard": department_label(d.code)[column],
             "terminals": used.get(d.id, 0)} for d in departments]
    return admin_page(request, scope, "admin_departments.html", "departments", status_code, departments=rows,
                      options=_department_options(t), state=state or FormState())


@router.get("/staff/institution/{institution_id}/departments", response_class=HTMLResponse)
def departments(request: Request, scope: ManagedPage) -> HTMLResponse:
    return _departments_page(request, scope)


@router.post("/staff/institution/{institution_id}/departments", response_class=HTMLResponse)
def add_department(
    request: Request,
    scope: ManagedPage,
    code: Annotated[str, Form(max_length=8)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    values = {"code": code.strip(), "name": name}
    try:
        department = institutions.add_department(scope.ctx, scope.institution, code=values["code"],
                                                 name=name if name.strip() else None)
        scope.ctx.session.commit()
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, values, "add", ("code", "name"))
        return _departments_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/departments", "department_added", f"{department.code} {department.name}")


@router.post("/staff/institution/{institution_id}/departments/{code}/rename", response_class=HTMLResponse)
def rename_department(
    request: Request,
    scope: ManagedPage,
    code: str,
    name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    try:
        department = institutions.rename_department(scope.ctx, scope.institution, code, name=name)
        scope.ctx.session.commit()
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, {}, f"rename-{code}")
        return _departments_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/departments", "department_renamed", f"{department.code} {department.name}")


@router.post("/staff/institution/{institution_id}/departments/{code}/remove", response_class=HTMLResponse)
def remove_department(request: Request, scope: ManagedPage, code: str,
                      csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    try:
        institutions.remove_department(scope.ctx, scope.institution, code)
        scope.ctx.session.commit()
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, {}, f"remove-{code}")
        return _departments_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/departments", "department_removed", code)


# -- terminals --------------------------------------------------------------------------------

def _terminal_roles(t: i18n.Translator) -> list[tuple[str, str]]:
    column = 1 if t.lang == "zh" else 0
    return [(role.value, t("admin.terminals.role_option", label=TERMINAL_LABELS[role][column],
                           type=TERMINAL_TYPE[role].value)) for role in TerminalRole]


def _terminals_page(request: Request, scope: Managed, state: FormState | None = None,
                    status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    column = 1 if t.lang == "zh" else 0
    session = scope.ctx.session
    departments = institutions.list_departments(session, scope.institution)
    by_id = {d.id: d for d in departments}
    rows = []
    for terminal in institutions.list_terminals(session, scope.institution):
        department = by_id.get(terminal.department_id) if terminal.department_id else None
        rows.append({
            "terminal_id": terminal.terminal_id,
            "name": terminal.name or "",
            "role": TERMINAL_LABELS[TerminalRole(terminal.role)][column],
            "type_code": terminal.type_code,
            "department_code": department.code if department else "",
            "department": f"{department.code} · {department.name}" if department else "",
            "status": terminal.status,
            "since": t.date((terminal.retired_at or terminal.created_at).astimezone(CHINA).date()),
        })
    return admin_page(request, scope, "admin_terminals.html", "terminals", status_code, terminals=rows,
                      roles=_terminal_roles(t), departments=[(d.code, f"{d.code} · {d.name}") for d in departments],
                      state=state or FormState(values={"role": TerminalRole.WINDOW.value}))


@router.get("/staff/institution/{institution_id}/terminals", response_class=HTMLResponse)
def terminals(request: Request, scope: ManagedPage) -> HTMLResponse:
    return _terminals_page(request, scope)


@router.post("/staff/institution/{institution_id}/terminals", response_class=HTMLResponse)
def register_terminal(
    request: Request,
    scope: ManagedPage,
    terminal_id: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    department_code: Annotated[str, Form(max_length=8)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    values = {"terminal_id": terminal_id.strip(), "role": role, "department_code": department_code, "name": name}
    try:
        terminal = institutions.register_terminal(
            scope.ctx, scope.institution, terminal_id=values["terminal_id"], role=role,
            department_code=department_code or None, name=name if name.strip() else None)
        scope.ctx.session.commit()
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, values, "add",
                      ("terminal_id", "role", "department_code", "name"), {"type_code": "role"})
        return _terminals_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/terminals", "terminal_registered", terminal.terminal_id)


@router.post("/staff/institution/{institution_id}/terminals/{terminal_id}", response_class=HTMLResponse)
def change_terminal(
    request: Request,
    scope: ManagedPage,
    terminal_id: str,
    action: Annotated[str, Form(max_length=16)] = "",
    department_code: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """One terminal's row: retire it, bring it back, or move it to another department (or none)."""
    require_csrf(request, scope.ctx, csrf_token)
    changes: dict[str, Any]
    if action in ("retire", "reactivate"):
        changes, flash = {"status": "retired" if action == "retire" else "active"}, f"terminal_{action}d"
    elif action == "move":
        changes, flash = {"department_code": department_code or None}, "terminal_moved"
    else:
        raise Problem("Unknown action.", code="bad_request")
    try:
        institutions.update_terminal(scope.ctx, scope.institution, terminal_id, **changes)
        scope.ctx.session.commit()
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, {}, f"row-{terminal_id}")
        return _terminals_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/terminals", flash, terminal_id)


# -- staff ------------------------------------------------------------------------------------

def _staff_page(request: Request, scope: Managed, state: FormState | None = None,
                status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    now = utcnow()
    rows = [{
        "id": a.id,
        "username": a.username,
        "display_name": a.display_name,
        "role": role_label(t, a.role),
        "active": a.active,
        "locked": a.locked_until is not None and a.locked_until > now,
        "created": t.date(a.created_at.astimezone(CHINA).date()),
        "own": a.id == scope.staff.account.id,
    } for a in accounts.list_staff(scope.ctx.session, scope.institution.id)]
    roles = [(r.value, t(f"roles.{r.value}")) for r in ROLE_ORDER]
    return admin_page(request, scope, "admin_staff.html", "staff", status_code, people=rows, roles=roles,
                      state=state or FormState(values={"role": Role.WINDOW_CLERK.value}))


@router.get("/staff/institution/{institution_id}/staff", response_class=HTMLResponse)
def staff_list(request: Request, scope: ManagedPage) -> HTMLResponse:
    return _staff_page(request, scope)


@router.post("/staff/institution/{institution_id}/staff", response_class=HTMLResponse)
def create_staff(
    request: Request,
    scope: ManagedPage,
    username: Annotated[str, Form(max_length=64)] = "",
    display_name: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    t = i18n.for_request(request)
    values = {"username": username.strip(), "display_name": display_name, "role": role}
    state = forms.missing(t, {**values, "password": password}, ("username", "role", "password"), "add")
    if state.failed:
        state.values = values
        return _staff_page(request, scope, state, 422)
    try:
        account = accounts.create_institution_staff(
            scope.ctx.session, scope.institution.id, username=values["username"], password=password, role=role,
            display_name=" ".join(display_name.split()) or None)
        scope.ctx.session.commit()
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, values, "add",
                            ("username", "display_name", "role", "password"))
        return _staff_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/staff", "staff_created", account.username)


@router.post("/staff/institution/{institution_id}/staff/{staff_id}", response_class=HTMLResponse)
def change_staff(
    request: Request,
    scope: ManagedPage,
    staff_id: str,
    action: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """One staff member's row: disable (ends their sessions at once) or enable the account."""
    require_csrf(request, scope.ctx, csrf_token)
    if action not in ("disable", "enable"):
        raise Problem("Unknown action.", code="bad_request")
    try:
        account = accounts.institution_staff(scope.ctx.session, scope.institution.id, staff_id)
        accounts.update_staff(scope.ctx.session, scope.ctx.actor, account, active=action == "enable")
        scope.ctx.session.commit()
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, {}, f"row-{staff_id}")
        return _staff_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/staff", f"staff_{action}d", account.username)


# -- the master index's review queue ------------------------------------------------------------
# The same rule as the API (``mpi.auth.MatchReviewer``) and the same reach (``mpi.review``): a
# regional operator sees their region's pairs, a platform admin all, an institution admin their own
# institution's submitted records. Both sides are masked, exactly as ``GET /api/v1/mpi/reviews/{id}``.

def _review_rule() -> Callable[[Ctx], Ctx]:
    from ..mpi.auth import MatchReviewer

    return _rule(MatchReviewer)


def reviewing_staff(staff: StaffPage) -> Staff:
    _review_rule()(staff.ctx)  # 403 role_not_allowed, as the API answers
    return staff


ReviewerPage = Annotated[Staff, Depends(reviewing_staff)]


def may_review(roles: frozenset[str]) -> bool:
    return bool(roles & {Role.REGIONAL_OPERATOR.value, Role.PLATFORM_ADMIN.value, Role.INSTITUTION_ADMIN.value})


@router.get("/staff/mpi/reviews", response_class=HTMLResponse)
def mpi_reviews(request: Request, staff: ReviewerPage, status: str = "open", source: str = "") -> HTMLResponse:
    from ..mpi import review

    t = i18n.for_request(request)
    status = status if status in review.STATUSES else ""
    source = source if source in review.SOURCES else ""
    rows, total = review.list_reviews(staff.ctx, status=status or None, source=source or None, limit=200)
    items = [{"id": r.id, "created": t.date(r.created_at.astimezone(CHINA).date()), "source": r.source,
              "pair": "record" if r.record_sealed is not None else "persons", "grade": r.grade,
              "probability": f"{r.probability:.2f}", "institution_id": r.institution_id, "status": r.status}
             for r in rows]
    return staff_page(request, staff, "staff_mpi_reviews.html", nav="staff_mpi_reviews", reviews=items, total=total,
                      filters={"status": status, "source": source})


def _review_page(request: Request, staff: Staff, review_id: int, error: str | None = None,
                 status_code: int = 200) -> HTMLResponse:
    from ..mpi import review

    row = review.get_review(staff.ctx, review_id)
    left, right = review.sides(staff.ctx, row)
    comparison = review.comparison(row)
    rows = []
    for name in review.FIELDS:
        compared = comparison.get(name)
        agreement = ""
        if isinstance(compared, dict):
            agreement = " · ".join(str(compared[k]) for k in ("level", "weight") if k in compared)
        rows.append({"field": name, "left": left.fields.get(name), "right": right.fields.get(name),
                     "agreement": agreement})
    view = {"id": row.id, "status": row.status, "grade": row.grade, "probability": f"{row.probability:.2f}",
            "score": f"{row.score:.1f}", "source": row.source, "institution_id": row.institution_id, "note": row.note}
    staff.ctx.session.commit()  # the audited read of both sides
    return staff_page(request, staff, "staff_mpi_review.html", status_code, nav="staff_mpi_reviews", review=view,
                      left=left, right=right, rows=rows, error=error)


@router.get("/staff/mpi/reviews/{review_id}", response_class=HTMLResponse)
def mpi_review(request: Request, staff: ReviewerPage, review_id: int) -> HTMLResponse:
    return _review_page(request, staff, review_id)


@router.post("/staff/mpi/reviews/{review_id}/{verdict}", response_class=HTMLResponse)
def mpi_decide(
    request: Request,
    staff: ReviewerPage,
    review_id: int,
    verdict: str,
    note: Annotated[str, Form(max_length=500)] = "",
    keep: Annotated[str, Form(max_length=8)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    from ..mpi import review

    require_csrf(request, staff.ctx, csrf_token)
    try:
        if verdict == "accept":
            review.accept(staff.ctx, review_id, note=note or None, keep=keep or None)
        elif verdict == "reject":
            review.reject(staff.ctx, review_id, reason)
        else:
            raise Problem("Unknown action.", code="bad_request")
        staff.ctx.session.commit()
    except Problem as problem:
        if problem.status == 404:
            raise
        staff.ctx.session.rollback()
        t = i18n.for_request(request)
        return _review_page(request, staff, review_id, forms.message(t, problem.code, forms.problem_params(problem),
                                                                     problem.detail), problem.status)
    return see_other(request, f"/staff/mpi/reviews/{review_id}", f"review_{verdict}ed", str(review_id))
