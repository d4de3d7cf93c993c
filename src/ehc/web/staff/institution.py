"""An institution's admin pages: the overview, departments, terminals and staff (keys: ``keys.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ...accounts import service as accounts
from ...institutions import service as institutions
from ...institutions.service import DEPARTMENTS, TERMINAL_LABELS, TERMINAL_TYPE, TerminalRole, department_label
from ...kit.errors import Problem
from ...kit.roles import Role
from .. import forms, i18n
from ..core import CHINA, PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import (
    AdminPage,
    Managed,
    ManagedPage,
    ROLE_ORDER,
    admin_page,
    form_failed,
    institution_view,
    role_label,
    staff_page,
)


router = APIRouter(route_class=PageRoute, include_in_schema=False)


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
    staff = accounts.list_staff(scope.ctx, scope.institution.id)
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
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, {}, f"row-{terminal_id}")
        return _terminals_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/terminals", flash, terminal_id)


# -- staff ------------------------------------------------------------------------------------

def _staff_page(request: Request, scope: Managed, state: FormState | None = None,
                status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    departments = [(d.code, f"{d.code} · {d.name}") for d in institutions.list_departments(scope.ctx.session,
                                                                                            scope.institution)]
    rows = [{
        "id": a.id,
        "username": a.username,
        "display_name": a.display_name,
        "department_code": a.department_code or "",
        "department": dict(departments).get(a.department_code, a.department_code or ""),
        "role": role_label(t, a.role),
        "active": a.active,
        "failures": a.failed_attempts,  # wrong passwords since its last sign-in
        "created": t.date(a.created_at.astimezone(CHINA).date()),
        "own": a.id == scope.staff.account.id,
    } for a in accounts.list_staff(scope.ctx, scope.institution.id)]
    roles = [(r.value, t(f"roles.{r.value}")) for r in ROLE_ORDER]
    return admin_page(request, scope, "admin_staff.html", "staff", status_code, people=rows, roles=roles,
                      departments=departments, state=state or FormState(values={"role": Role.WINDOW_CLERK.value}))


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
    department_code: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, scope.ctx, csrf_token)
    t = i18n.for_request(request)
    values = {"username": username.strip(), "display_name": display_name, "role": role,
              "department_code": department_code}
    state = forms.missing(t, {**values, "password": password}, ("username", "role", "password"), "add")
    if state.failed:
        state.values = values
        return _staff_page(request, scope, state, 422)
    try:
        department = institutions.department_of(scope.ctx.session, scope.institution.id, department_code or None,
                                                field="department_code")
        account = accounts.create_institution_staff(
            scope.ctx, scope.institution.id, username=values["username"], password=password, role=role,
            display_name=" ".join(display_name.split()) or None, department_code=department)
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, values, "add",
                            ("username", "display_name", "role", "password", "department_code"))
        return _staff_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/staff", "staff_created", account.username)


@router.post("/staff/institution/{institution_id}/staff/{staff_id}", response_class=HTMLResponse)
def change_staff(
    request: Request,
    scope: ManagedPage,
    staff_id: str,
    action: Annotated[str, Form(max_length=16)] = "",
    department_code: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """One staff member's row: disable (ends their sessions at once) or enable the account, or move them to
    another department of the institution (or none: health records' department grants read it)."""
    require_csrf(request, scope.ctx, csrf_token)
    if action not in ("disable", "enable", "move"):
        raise Problem("Unknown action.", code="bad_request")
    try:
        account = accounts.institution_staff(scope.ctx, scope.institution.id, staff_id)
        if action == "move":
            department = institutions.department_of(scope.ctx.session, scope.institution.id, department_code or None,
                                                    field="department_code")
            accounts.update_staff(scope.ctx, account, department_code=department, clear_department=department is None)
        else:
            accounts.update_staff(scope.ctx, account, active=action == "enable")
    except Problem as problem:
        state = form_failed(scope.ctx.session, request, problem, {}, f"row-{staff_id}")
        return _staff_page(request, scope, state, problem.status)
    return see_other(request, f"{scope.base}/staff", "staff_moved" if action == "move" else f"staff_{action}d",
                     account.username)
