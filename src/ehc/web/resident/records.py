"""My health records: the timeline across hospitals (filter by kind, hospital, date), the first page of my
basic health record (with entries of my own), and my consent choices (allow or deny an institution, revoke
at once), over the same services as ``/api/v1/me/records``."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...institutions import service as institutions
from ...kit.errors import Problem
from ...mpi import service as mpi
from ...records import service as records
from .. import i18n
from ..core import CHINA, PageRoute
from ..forms import FormState, problem_state, require_csrf, see_other
from .common import ResidentPage, resident_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _names(ctx, ids: set[str]) -> dict[str, str]:  # noqa: ANN001
    found = {i: institutions.find_institution(ctx.session, i) for i in ids if i}
    return {i: inst.name for i, inst in found.items() if inst is not None}


@router.get("/me/records", response_class=HTMLResponse)
def timeline(request: Request, ctx: ResidentPage, type: Annotated[str, Query(max_length=32)] = "",  # noqa: A002
             institution: Annotated[str, Query(max_length=24)] = "", since: Annotated[str, Query(max_length=10)] = "",
             until: Annotated[str, Query(max_length=10)] = "") -> HTMLResponse:
    t = i18n.for_request(request)
    kind = type if type in records.SUBJECT else ""
    person = mpi.resolve(ctx, ctx.actor.id)
    chosen = records.Filters((kind,) if kind else (), institution or None, _day(since), _day(until))
    entries = records.timeline(ctx, records.access(ctx, person), chosen)
    every = records.timeline(ctx, records.access(ctx, person), limit=1000)
    names = _names(ctx, {e.institution_id for e in every})
    rows = [{"when": t.date(e.effective_at.astimezone(CHINA).date()) if e.effective_at else "",
             "kind": t(f"records.kind_{e.resource_type}"), "title": e.title, "status": e.status or "",
             "where": names.get(e.institution_id, e.institution_id),
             "sensitive": t(f"records.sensitive_{e.sensitivity}") if e.sensitivity else ""} for e in entries]
    return resident_page(request, ctx, "me_records.html", nav="records", rows=rows,
                         kinds=[(k, t(f"records.kind_{k}")) for k in records.SUBJECT],
                         hospitals=sorted(names.items(), key=lambda kv: kv[1]),
                         chosen={"type": kind, "institution": institution, "since": since, "until": until})


def _consents_page(request: Request, ctx, state: FormState | None = None, status_code: int = 200) -> HTMLResponse:  # noqa: ANN001
    t = i18n.for_request(request)
    person = mpi.resolve(ctx, ctx.actor.id)
    found = records.consents(ctx, person)
    names = _names(ctx, {c.institution_id for c in found})
    rows = [{"id": c.id, "effect": t(f"records.effect_{c.effect}"), "live": records.is_live(c),
             "where": names.get(c.institution_id, c.institution_id),
             "categories": ", ".join(t(f"records.category_{x}") for x in c.categories.split(",")),
             "purpose": t(f"records.purpose_{c.purpose}"),
             "until": t.date(c.ends_at.astimezone(CHINA).date()) if c.ends_at else t("records.open_ended"),
             "revoked": c.revoked_at is not None} for c in found]
    glass = [{"when": f"{t.date(b.at.astimezone(CHINA).date())} {b.at.astimezone(CHINA):%H:%M}",
              "where": b.institution_id or "", "reason": b.reason} for b in records.break_glass_reads(ctx, person)]
    categories = [(c, t(f"records.category_{c}")) for c in ("all", *records.CATEGORIES, *records.SENSITIVE)]
    return resident_page(request, ctx, "me_records_consents.html", status_code, nav="records", rows=rows, glass=glass,
                         categories=categories, purposes=[(p, t(f"records.purpose_{p}")) for p in records.PURPOSES],
                         state=state or FormState())


@router.get("/me/records/consents", response_class=HTMLResponse)
def consents(request: Request, ctx: ResidentPage) -> HTMLResponse:
    return _consents_page(request, ctx)


@router.post("/me/records/consents", response_class=HTMLResponse)
def grant(request: Request, ctx: ResidentPage, institution_id: Annotated[str, Form(max_length=24)] = "",
          effect: Annotated[str, Form(max_length=5)] = "allow", categories: Annotated[list[str] | None, Form()] = None,
          purpose: Annotated[str, Form(max_length=16)] = "treatment", days: Annotated[str, Form(max_length=4)] = "",
          csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    try:
        records.grant(ctx, mpi.resolve(ctx, ctx.actor.id), effect=effect, institution_id=institution_id.strip(),
                      categories=categories or [], purpose=purpose, days=int(days) if days.isdigit() else None)
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(values={"institution_id": institution_id, "days": days})
        for error in problem.errors or [{"field": "", "message": problem.detail}]:
            state.add(error.get("field") or "", problem.detail)
        return _consents_page(request, ctx, state, 422)
    return see_other(request, "/me/records/consents")


@router.post("/me/records/consents/{consent_id}/revoke", response_class=HTMLResponse)
def revoke(request: Request, consent_id: str, ctx: ResidentPage, csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    records.revoke(ctx, mpi.resolve(ctx, ctx.actor.id), consent_id)
    return see_other(request, "/me/records/consents")


# -- the first page of the basic health record ------------------------------------------------------

_SUMMARY_FIELDS = ("kind", "text", "on", "abo", "rh")


def _summary_page(request: Request, ctx, state: FormState | None = None, status_code: int = 200) -> HTMLResponse:  # noqa: ANN001
    t = i18n.for_request(request)
    found = records.summary(ctx, records.access(ctx, mpi.resolve(ctx, ctx.actor.id)))
    sections = [{"key": key, "title": t(f"records.section_{key}"),
                 "entries": [{"id": i.id, "text": i.text, "own": i.source == "self",
                            "source": i.institution_name if i.source == "record" else t("records.source_self"),
                            "on": t.date(i.on) if i.on else "",
                            "sensitive": t(f"records.sensitive_{i.sensitivity}") if i.sensitivity else ""}
                           for i in items]} for key, items in found.sections.items()]
    return resident_page(request, ctx, "me_records_summary.html", status_code, nav="records", sections=sections,
                         kinds=[(k, t(f"records.own_{k}")) for k in records.OWN_KINDS if k != "blood_type"],
                         abo=[(a, a) for a in records.ABO], rh=[(r, t(f"records.rh_{r}")) for r in records.RH],
                         state=state or FormState())


@router.get("/me/records/summary", response_class=HTMLResponse)
def summary(request: Request, ctx: ResidentPage) -> HTMLResponse:
    return _summary_page(request, ctx)


@router.post("/me/records/summary", response_class=HTMLResponse)
def add_entry(request: Request, ctx: ResidentPage, kind: Annotated[str, Form(max_length=16)] = "",
              text: Annotated[str, Form(max_length=400)] = "", on: Annotated[str, Form(max_length=10)] = "",
              abo: Annotated[str, Form(max_length=2)] = "", rh: Annotated[str, Form(max_length=8)] = "",
              csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    try:
        records.add_own_entry(ctx, mpi.resolve(ctx, ctx.actor.id), kind=kind, text=text, abo=abo or None,
                              rh=rh or None, on=_day(on))
    except Problem as problem:
        ctx.session.rollback()
        form = "blood" if kind == "blood_type" else "entry"
        state = problem_state(i18n.for_request(request), problem, {"kind": kind, "text": text, "on": on},
                              form=form, fields=_SUMMARY_FIELDS)
        return _summary_page(request, ctx, state, 422)
    return see_other(request, "/me/records/summary")


@router.post("/me/records/summary/entries/{entry_id}/remove", response_class=HTMLResponse)
def remove_entry(request: Request, entry_id: str, ctx: ResidentPage, csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    records.remove_own_entry(ctx, mpi.resolve(ctx, ctx.actor.id), entry_id)
    return see_other(request, "/me/records/summary")
