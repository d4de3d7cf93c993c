"""Who looked at my data: the access log, shaped as the resident API shapes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ...audit import service as audit
from ...audit.schemas import access_log_entry  # the API's own shaping: the same masking
from ...institutions import service as institutions
from ...kit.codes import CHANNEL_LABELS
from ...me import service as me
from .. import i18n
from ..core import CHINA, PageRoute
from .common import LOG_PAGE, ResidentPage, resident_page


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- who looked at my data --------------------------------------------------------------------

def _who(t: i18n.Translator, entry: Any, names: dict[str, str]) -> str:
    if entry.institution_id:
        return names.get(entry.institution_id) or entry.institution_id
    key = f"access_log.actor_{entry.actor_kind}"
    return t(key) if t.has(key) else entry.actor_kind


def _role(t: i18n.Translator, role: str | None) -> str:
    if not role:
        return ""
    return ", ".join(t(f"roles.{r}") if t.has(f"roles.{r}") else r for r in role.split(","))


@router.get("/me/access-log", response_class=HTMLResponse)
def access_log(
    request: Request,
    ctx: ResidentPage,
    member: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    t = i18n.for_request(request)
    person_id, relation = ctx.actor.id, None
    if member:  # a family member the resident guards; any other card is "not found", as in the API
        card, binding = me.guarded_card(ctx, member)
        person_id, relation = card.person_id, binding.relation
    found = audit.access_log_for_person(ctx, person_id, before=before, limit=LOG_PAGE)
    entries = [access_log_entry(e) for e in found.events]
    names: dict[str, str] = {}
    for institution_id in {e.institution_id for e in entries if e.institution_id}:
        institution = institutions.find_institution(ctx.session, institution_id)
        if institution is not None:
            names[institution_id] = institution.name
    column = 1 if t.lang == "zh" else 0
    rows = []
    for e in entries:
        at: datetime = e.at.astimezone(CHINA)
        channel = next((labels for code, labels in CHANNEL_LABELS.items() if code.value == e.channel), None)
        rows.append({
            "ref": e.ref,
            "at_iso": at.isoformat(timespec="seconds"),
            "date": t.date(at.date()),
            "time": at.strftime("%H:%M"),
            "who": _who(t, e, names),
            "role": _role(t, e.actor_role),
            "operator": e.operator or "",
            "channel": channel[column] if channel else e.channel,
            "purpose": e.purpose_label_zh if t.lang == "zh" else e.purpose_label,
            "action": e.action,
            "action_label": t(f"access_log.action_{e.action}"),
        })
    older = None
    if found.next_before is not None:
        older = "/me/access-log?" + (f"member={quote(member)}&" if member else "") + f"before={found.next_before}"
    return resident_page(request, ctx, "me_access_log.html", nav="access_log", rows=rows, older=older,
                         member=member, relation=t(f"relations.{relation}") if relation else None,
                         first_page=before is None)
