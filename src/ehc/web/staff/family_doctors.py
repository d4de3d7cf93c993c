"""Family-doctor staff pages: the team's work list (services overdue, recent contracts) with the
contract desk (find a resident's contract by card, sign at the window), a contract with its
services and the forms to record a follow-up and to refer, and the centre's page (teams, forming a
team, coverage with a chart). The same service calls and role rules as ``/api/v1/family-doctors``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...accounts import service as accounts
from ...family_doctors import service as fd
from ...family_doctors.auth import ContractDesk, TeamManager, TeamWorker
from ...kit.errors import NotFound, Problem
from .. import i18n
from ..core import PageRoute
from ..family_doctors import coverage_view, fd_message, money, progress_rows
from ..forms import FormState, require_csrf, see_other
from .common import Staff, staff_page, page_under

router = APIRouter(route_class=PageRoute, include_in_schema=False)
DeskPage, WorkerPage, ManagerPage = (page_under(a) for a in (ContractDesk, TeamWorker, TeamManager))


def _contract_view(t: i18n.Translator, ctx: Any, c: fd.Contract) -> dict[str, Any]:
    return {"id": c.id, "status": c.status, "status_label": t(f"family_doctor.status.{c.status}"),
            "name": fd.resident_name(ctx, c), "start": t.date(c.start_date), "end": t.date(c.end_date),
            "packages": [term["name"] for term in c.terms], "active": c.status == "active",
            "resident_pays": money(c.price_resident_fen)}


# -- the work list and the contract desk ----------------------------------------------------------------

def _work_page(request: Request, staff: Staff, ehc_id: str = "", state: FormState | None = None,
               status: int = 200, outreach: str = "") -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    teams = []
    for team in fd.my_teams(ctx):
        work = fd.work_list(ctx, team.id)
        teams.append({"id": team.id, "name": team.name, "overdue_total": work.overdue_total,
                      "ending_soon": work.ending_soon,
                      "overdue": [{"contract": i.contract.id, "name": i.name, "end": t.date(i.contract.end_date),
                                   "services": ", ".join(f"{p.name} ({p.overdue})" for p in i.overdue)}
                                  for i in work.overdue],
                      "recent": [{"contract": c.id, "name": name, "start": t.date(c.start_date),
                                  "status": t(f"family_doctor.status.{c.status}")} for c, name in work.recent],
                      # opened on request only: each name read for outreach is an audited access
                      "outreach": [{"name": i.masked_name, "born": i.birth_year, "region": i.region_code,
                                    "conditions": ", ".join(t(f"family_doctor.condition.{c}") for c in i.conditions)}
                                   for i in fd.outreach(ctx, team.id, limit=20)] if outreach == team.id else None})
    desk_teams = [(team.id, team.name) for team in fd.teams_of(ctx, staff.institution.id)
                  if team.status == "active"] if staff.institution else []
    found = None
    state = state or FormState()
    if ehc_id and not state.failed:
        try:
            found = [_contract_view(t, ctx, c) for c in fd.contracts_of_card(ctx, ehc_id)]
        except Problem as problem:
            state.add("ehc_id", fd_message(t, problem))
    packages = [(p.id, f"{p.name} · {money(p.price_resident_fen)}")
                for p in fd.packages_for(ctx, staff.institution.id)] if staff.institution else []
    return staff_page(request, staff, "staff_family_doctors.html", status, nav="staff_family_doctors", teams=teams,
                      desk_teams=desk_teams, packages=packages, found=found, ehc_id=ehc_id, state=state)


@router.get("/staff/family-doctors", response_class=HTMLResponse)
def work(request: Request, staff: DeskPage, ehc_id: Annotated[str, Query(max_length=64)] = "",
         outreach: Annotated[str, Query(max_length=24)] = "") -> HTMLResponse:
    return _work_page(request, staff, "".join(ehc_id.split()).upper(), outreach=outreach)


@router.post("/staff/family-doctors/sign", response_class=HTMLResponse)
def sign(request: Request, staff: DeskPage, team_id: Annotated[str, Form(max_length=24)] = "",
         ehc_id: Annotated[str, Form(max_length=100)] = "", code: Annotated[str, Form(max_length=2000)] = "",
         package_ids: Annotated[list[str], Form(max_length=10)] = [],  # noqa: B006 - FastAPI's form list
         csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    typed = "".join(ehc_id.split()).upper()
    try:
        contract = fd.sign(staff.ctx, team_id, package_ids=package_ids, ehc_id=typed or None, code=code or None)
    except Problem as problem:
        staff.ctx.session.rollback()
        state = FormState(values={"team_id": team_id, "ehc_id": ehc_id}, form="sign")
        state.add("", fd_message(i18n.for_request(request), problem))
        return _work_page(request, staff, "", state, problem.status)
    return see_other(request, f"/staff/family-doctors/contracts/{contract.id}", "family_doctor_signed")


# -- a contract: services, recording a follow-up, referring ---------------------------------------------

def _contract_page(request: Request, staff: Staff, contract_id: str, state: FormState | None = None,
                   status: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    contract = fd.get_contract(ctx, contract_id)
    view = _contract_view(t, ctx, contract)
    progress = fd.progress(ctx, contract)
    done = [{"when": t.date(d.performed_at.date()), "service": d.service_code,
             "bp": f"{d.systolic_mmhg}/{d.diastolic_mmhg}" if d.systolic_mmhg else "",
             "glucose": f"{d.glucose_mmol_x10 / 10:.1f}" if d.glucose_mmol_x10 else "",
             "weight": f"{d.weight_kg_x10 / 10:.1f}" if d.weight_kg_x10 else "", "notes": fd.delivery_notes(ctx, d) or ""}
            for d in fd.deliveries(ctx, contract)]
    referrals = [{"department": r.department_code, "reason": r.reason,
                  "status": t(f"family_doctor.referral_status.{r.status}")} for r in fd.referrals(ctx, contract)]
    services = [(p.code, f"{p.name} ({p.done}/{p.promised})") for p in progress if p.done < p.promised]
    return staff_page(request, staff, "staff_family_doctor_contract.html", status, nav="staff_family_doctors",
                      contract=view, progress=progress_rows(t, progress), done=done, referrals=referrals,
                      services=services, state=state or FormState())


@router.get("/staff/family-doctors/contracts/{contract_id}", response_class=HTMLResponse)
def contract_page(request: Request, staff: DeskPage, contract_id: str) -> HTMLResponse:
    return _contract_page(request, staff, contract_id)


def _number(raw: str, scale: int = 1) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return round(float(raw) * scale)
    except ValueError:
        return -1  # the service refuses it as out of range


@router.post("/staff/family-doctors/contracts/{contract_id}/services", response_class=HTMLResponse)
def record(request: Request, staff: WorkerPage, contract_id: str,
           service_code: Annotated[str, Form(max_length=32)] = "",
           systolic: Annotated[str, Form(max_length=6)] = "", diastolic: Annotated[str, Form(max_length=6)] = "",
           glucose: Annotated[str, Form(max_length=6)] = "", weight: Annotated[str, Form(max_length=6)] = "",
           notes: Annotated[str, Form(max_length=2000)] = "", code: Annotated[str, Form(max_length=2000)] = "",
           csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    values = {"service_code": service_code, "systolic": systolic, "diastolic": diastolic, "glucose": glucose,
              "weight": weight, "notes": notes}
    try:
        fd.record_service(staff.ctx, contract_id, service_code, fd.Measurements(
            systolic_mmhg=_number(systolic), diastolic_mmhg=_number(diastolic), glucose_mmol_x10=_number(glucose, 10),
            weight_kg_x10=_number(weight, 10), notes=notes.strip() or None), code=code or None)
    except Problem as problem:
        staff.ctx.session.rollback()
        state = FormState(values=values, form="record")
        state.add("", fd_message(i18n.for_request(request), problem))
        return _contract_page(request, staff, contract_id, state, problem.status)
    return see_other(request, f"/staff/family-doctors/contracts/{contract_id}", "family_doctor_recorded")


@router.post("/staff/family-doctors/contracts/{contract_id}/referrals", response_class=HTMLResponse)
def refer(request: Request, staff: WorkerPage, contract_id: str,
          to_institution_id: Annotated[str, Form(max_length=24)] = "",
          department_code: Annotated[str, Form(max_length=4)] = "", reason: Annotated[str, Form(max_length=200)] = "",
          csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    try:
        fd.refer(staff.ctx, contract_id, to_institution_id=to_institution_id, department_code=department_code,
                 reason=reason)
    except Problem as problem:
        staff.ctx.session.rollback()
        state = FormState(values={"to_institution_id": to_institution_id, "department_code": department_code,
                                  "reason": reason}, form="refer")
        state.add("", fd_message(i18n.for_request(request), problem))
        return _contract_page(request, staff, contract_id, state, problem.status)
    return see_other(request, f"/staff/family-doctors/contracts/{contract_id}", "family_doctor_referred")


# -- the centre: teams and coverage ---------------------------------------------------------------

def _centre_page(request: Request, staff: Staff, state: FormState | None = None, status: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    institution = staff.institution
    teams, coverage, leads = [], None, []
    if institution is not None:
        for team in fd.teams_of(ctx, institution.id):
            view = fd.team_view(ctx, team)
            teams.append({"id": team.id, "name": team.name, "status": team.status, "areas": " ".join(view.areas),
                          "members": ", ".join(f"{n} ({t('family_doctor.role.' + m.role)})" for m, n in view.members),
                          "load": f"{view.contracted}/{view.capacity}"})
        coverage = coverage_view(*fd.centre_coverage(ctx, institution.id))
        leads = [(a.id, a.display_name) for a in accounts.list_staff(ctx, institution.id)
                 if a.role in ("family_doctor", "doctor") and a.active]
    return staff_page(request, staff, "staff_family_doctor_centre.html", status, nav="staff_family_doctor_centre",
                      teams=teams, coverage=coverage, leads=leads, state=state or FormState())


@router.get("/staff/family-doctors/centre", response_class=HTMLResponse)
def centre(request: Request, staff: ManagerPage) -> HTMLResponse:
    return _centre_page(request, staff)


@router.post("/staff/family-doctors/teams", response_class=HTMLResponse)
def create_team(request: Request, staff: ManagerPage, name: Annotated[str, Form(max_length=100)] = "",
                lead_staff_id: Annotated[str, Form(max_length=24)] = "",
                areas: Annotated[str, Form(max_length=500)] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    try:
        if staff.institution is None:
            raise NotFound("No institution.", code="institution_not_found")
        fd.create_team(staff.ctx, staff.institution.id, name=name, lead_staff_id=lead_staff_id,
                       areas=[a for a in areas.replace(",", " ").split() if a])
    except Problem as problem:
        staff.ctx.session.rollback()
        state = FormState(values={"name": name, "lead_staff_id": lead_staff_id, "areas": areas}, form="team")
        state.add("", fd_message(i18n.for_request(request), problem))
        return _centre_page(request, staff, state, problem.status)
    return see_other(request, "/staff/family-doctors/centre", "family_doctor_team_created", name)
