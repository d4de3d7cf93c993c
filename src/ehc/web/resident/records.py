"""My health records: the timeline across hospitals (filter by kind, hospital, date), the first page of my
basic health record (with entries of my own), and my consent choices (allow or deny an institution or one
of its departments, revoke at once), over the same services as ``/api/v1/me/records``. With ``member``
(the EHC ID of a family member I guard) every page and form is the family member's, as the API's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...institutions import service as institutions
from ...kit.errors import Problem
from ...me import service as me
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


Member = Annotated[str, Query(max_length=64)]


@dataclass(frozen=True)
class Whose:
    """Whose records a page shows: the resident's own, or a guarded family member's (their EHC ID, the
    relation's label, and the query string every link and form of the page carries along)."""

    person: mpi.Person
    member: str = ""
    relation: str = ""

    @property
    def query(self) -> str:
        return f"?member={quote(self.member)}" if self.member else ""


def _whose(request: Request, ctx, member: str) -> Whose:  # noqa: ANN001
    person = records.resident_subject(ctx, member or None)  # 404 card_not_found for a card not guarded
    if not member:
        return Whose(person)
    _, binding = me.guarded_card(ctx, member.strip().upper())
    t = i18n.for_request(request)
    return Whose(person, member.strip().upper(), t(f"relations.{binding.relation}"))


def _family(request: Request, ctx) -> list[tuple[str, str]]:  # noqa: ANN001
    """The family members the resident guards who have a card: (EHC ID, relation), for the page's switch."""
    t = i18n.for_request(request)
    try:
        members = me.family(ctx)
    except Problem:  # no card of one's own: no family to switch to
        return []
    return [(card.ehc_id, t(f"relations.{binding.relation}")) for binding, card in members if card is not None]


def _names(ctx, ids: set[str]) -> dict[str, str]:  # noqa: ANN001
    found = {i: institutions.find_institution(ctx.session, i) for i in ids if i}
    return {i: inst.name for i, inst in found.items() if inst is not None}


@router.get("/me/records", response_class=HTMLResponse)
def timeline(request: Request, ctx: ResidentPage, type: Annotated[str, Query(max_length=32)] = "",  # noqa: A002
             institution: Annotated[str, Query(max_length=24)] = "", since: Annotated[str, Query(max_length=10)] = "",
             until: Annotated[str, Query(max_length=10)] = "", member: Member = "") -> HTMLResponse:
    t = i18n.for_request(request)
    kind = type if type in records.SUBJECT else ""
    whose = _whose(request, ctx, member)
    person = whose.person
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
                         hospitals=sorted(names.items(), key=lambda kv: kv[1]), whose=whose,
                         family=_family(request, ctx),
                         chosen={"type": kind, "institution": institution, "since": since, "until": until})


def _consents_page(request: Request, ctx, whose: Whose, state: FormState | None = None,  # noqa: ANN001
                   status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    person = whose.person
    found = records.consents(ctx, person)
    names = _names(ctx, {c.institution_id for c in found})
    rows = [{"id": c.id, "effect": t(f"records.effect_{c.effect}"), "live": records.is_live(c),
             "where": names.get(c.institution_id, c.institution_id), "department": c.department or "",
             "categories": ", ".join(t(f"records.category_{x}") for x in c.categories.split(",")),
             "purpose": t(f"records.purpose_{c.purpose}"),
             "until": t.date(c.ends_at.astimezone(CHINA).date()) if c.ends_at else t("records.open_ended"),
             "revoked": c.revoked_at is not None} for c in found]
    glass = [{"when": f"{t.date(b.at.astimezone(CHINA).date())} {b.at.astimezone(CHINA):%H:%M}",
              "where": b.institution_id or "", "reason": b.reason} for b in records.break_glass_reads(ctx, person)]
    categories = [(c, t(f"records.category_{c}")) for c in ("all", *records.CATEGORIES, *records.SENSITIVE)]
    return resident_page(request, ctx, "me_records_consents.html", status_code, nav="records", rows=rows, glass=glass,
                         categories=categories, purposes=[(p, t(f"records.purpose_{p}")) for p in records.PURPOSES],
                         whose=whose, state=state or FormState())


@router.get("/me/records/consents", response_class=HTMLResponse)
def consents(request: Request, ctx: ResidentPage, member: Member = "") -> HTMLResponse:
    return _consents_page(request, ctx, _whose(request, ctx, member))


@router.post("/me/records/consents", response_class=HTMLResponse)
def grant(request: Request, ctx: ResidentPage, institution_id: Annotated[str, Form(max_length=24)] = "",
          effect: Annotated[str, Form(max_length=5)] = "allow", categories: Annotated[list[str] | None, Form()] = None,
          purpose: Annotated[str, Form(max_length=16)] = "treatment", days: Annotated[str, Form(max_length=4)] = "",
          department: Annotated[str, Form(max_length=8)] = "", csrf_token: Annotated[str, Form()] = "",
          member: Member = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    whose = _whose(request, ctx, member)
    try:
        records.grant(ctx, whose.person, effect=effect, institution_id=institution_id.strip(),
                      categories=categories or [], purpose=purpose, days=int(days) if days.isdigit() else None,
                      department=department.strip() or None)
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(values={"institution_id": institution_id, "days": days, "department": department})
        for error in problem.errors or [{"field": "", "message": problem.detail}]:
            state.add(error.get("field") or "", problem.detail)
        return _consents_page(request, ctx, whose, state, 422)
    return see_other(request, "/me/records/consents" + whose.query)


@router.post("/me/records/consents/{consent_id}/revoke", response_class=HTMLResponse)
def revoke(request: Request, consent_id: str, ctx: ResidentPage, csrf_token: Annotated[str, Form()] = "",
           member: Member = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    whose = _whose(request, ctx, member)
    records.revoke(ctx, whose.person, consent_id)
    return see_other(request, "/me/records/consents" + whose.query)


# -- the first page of the basic health record ------------------------------------------------------

_SUMMARY_FIELDS = ("kind", "text", "on", "abo", "rh")


def _summary_page(request: Request, ctx, whose: Whose, state: FormState | None = None,  # noqa: ANN001
                  status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    found = records.summary(ctx, records.access(ctx, whose.person))
    sections = [{"key": key, "title": t(f"records.section_{key}"),
                 "entries": [{"id": i.id, "text": i.text, "own": i.source == "self",
                            "source": i.institution_name if i.source == "record" else t("records.source_self"),
                            "on": t.date(i.on) if i.on else "",
                            "sensitive": t(f"records.sensitive_{i.sensitivity}") if i.sensitivity else ""}
                           for i in items]} for key, items in found.sections.items()]
    return resident_page(request, ctx, "me_records_summary.html", status_code, nav="records", sections=sections,
                         kinds=[(k, t(f"records.own_{k}")) for k in records.OWN_KINDS if k != "blood_type"],
                         abo=[(a, a) for a in records.ABO], rh=[(r, t(f"records.rh_{r}")) for r in records.RH],
                         whose=whose, state=state or FormState())


@router.get("/me/records/summary", response_class=HTMLResponse)
def summary(request: Request, ctx: ResidentPage, member: Member = "") -> HTMLResponse:
    return _summary_page(request, ctx, _whose(request, ctx, member))


@router.post("/me/records/summary", response_class=HTMLResponse)
def add_entry(request: Request, ctx: ResidentPage, kind: Annotated[str, Form(max_length=16)] = "",
              text: Annotated[str, Form(max_length=400)] = "", on: Annotated[str, Form(max_length=10)] = "",
              abo: Annotated[str, Form(max_length=2)] = "", rh: Annotated[str, Form(max_length=8)] = "",
              csrf_token: Annotated[str, Form()] = "", member: Member = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    whose = _whose(request, ctx, member)
    try:
        records.add_own_entry(ctx, whose.person, kind=kind, text=text, abo=abo or None,
                              rh=rh or None, on=_day(on))
    except Problem as problem:
        ctx.session.rollback()
        form = "blood" if kind == "blood_type" else "entry"
        state = problem_state(i18n.for_request(request), problem, {"kind": kind, "text": text, "on": on},
                              form=form, fields=_SUMMARY_FIELDS)
        return _summary_page(request, ctx, whose, state, 422)
    return see_other(request, "/me/records/summary" + whose.query)


@router.post("/me/records/summary/entries/{entry_id}/remove", response_class=HTMLResponse)
def remove_entry(request: Request, entry_id: str, ctx: ResidentPage, csrf_token: Annotated[str, Form()] = "",
                 member: Member = "") -> Response:
    require_csrf(request, ctx, csrf_token)
    whose = _whose(request, ctx, member)
    records.remove_own_entry(ctx, whose.person, entry_id)
    return see_other(request, "/me/records/summary" + whose.query)
