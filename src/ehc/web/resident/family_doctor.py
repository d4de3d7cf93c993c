"""My family doctor: the resident's contract and those of the family members they guard (team,
packages as signed, services done and due, referrals), signing with a team serving their area,
renewing and ending. The same service calls as ``/api/v1/me/family-doctor``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...family_doctors import service as fd
from ...kit.errors import NotFound, Problem
from .. import i18n
from ..core import PageRoute
from ..family_doctors import fd_message, money, progress_rows, relation_label
from ..forms import FormState, require_csrf, see_other
from .common import ResidentPage, resident_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _page(request: Request, ctx: Any, member: str, state: FormState | None = None, status: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    contracts = []
    for mine in fd.my_family_doctor(ctx):
        c = mine.contract
        contracts.append({
            "id": c.id, "status": c.status, "status_label": t(f"family_doctor.status.{c.status}"),
            "who": relation_label(t, mine.relation), "team": mine.team.name if mine.team else c.team_id,
            "start": t.date(c.start_date), "end": t.date(c.end_date), "active": c.status == "active",
            "packages": [term["name"] for term in c.terms],
            "prices": {"public": money(c.price_public_fen), "insurance": money(c.price_insurance_fen),
                       "resident": money(c.price_resident_fen)},
            "progress": progress_rows(t, mine.progress),
            "done": [{"when": t.date(d.performed_at.date()), "service": d.service_code, "kind": d.kind,
                      "bp": f"{d.systolic_mmhg}/{d.diastolic_mmhg}" if d.systolic_mmhg else ""}
                     for d in mine.deliveries],
            "referrals": [{"department": r.department_code, "reason": r.reason,
                           "status": t(f"family_doctor.referral_status.{r.status}")} for r in mine.referrals],
        })
    members = [(ehc_id or "", relation_label(t, relation)) for ehc_id, relation in fd.people_i_act_for(ctx)]
    offer = None
    try:
        _, teams, packages = fd.offer_for(ctx, member or None)
        offer = [{"id": team.id, "name": team.name,
                  "packages": [{"id": p.id, "name": p.name, "basic": p.kind == "basic",
                                "resident": money(p.price_resident_fen),
                                "services": ", ".join(f"{s['name']} ×{s['yearly_count']}" for s in p.services)}
                               for p in packages[team.id]]} for team in teams]
    except Problem as problem:
        state = state or FormState()
        state.add("", fd_message(t, problem))
    return resident_page(request, ctx, "me_family_doctor.html", status, nav="family_doctor", contracts=contracts,
                         members=members, member=member, offer=offer, state=state or FormState())


@router.get("/me/family-doctor", response_class=HTMLResponse)
def my_family_doctor(request: Request, ctx: ResidentPage,
                     member: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    return _page(request, ctx, member)


@router.post("/me/family-doctor/sign", response_class=HTMLResponse)
def sign(request: Request, ctx: ResidentPage, team_id: Annotated[str, Form(max_length=24)] = "",
         package_ids: Annotated[list[str], Form(max_length=10)] = [],  # noqa: B006 - FastAPI's form list
         member: Annotated[str, Form(max_length=64)] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    try:
        fd.sign(ctx, team_id, package_ids=package_ids, ehc_id=member or None)
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(values={"team_id": team_id})
        state.add("", fd_message(i18n.for_request(request), problem))
        return _page(request, ctx, member, state, problem.status)
    return see_other(request, "/me/family-doctor", "family_doctor_signed")


@router.post("/me/family-doctor/{contract_id}/{action}", response_class=HTMLResponse)
def act(request: Request, ctx: ResidentPage, contract_id: str, action: str,
        reason: Annotated[str, Form(max_length=200)] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    try:
        if action == "renew":
            fd.renew(ctx, contract_id)
        elif action == "terminate":
            fd.terminate(ctx, contract_id, reason)
        else:
            raise NotFound("No such action.", code="not_found")
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(values={"reason": reason})
        state.add("", fd_message(i18n.for_request(request), problem))
        return _page(request, ctx, "", state, problem.status)
    return see_other(request, "/me/family-doctor", f"family_doctor_{action}")
