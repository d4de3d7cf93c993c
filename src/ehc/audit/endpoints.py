"""Audit trail API: thin. A resident's access log, and the auditors' search."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ..me import service as me
from . import service
from .auth import AuditReader, ResidentSelf
from .schemas import AccessLogPage, AuditEventOut, AuditPage, access_log_entry

router = APIRouter(tags=["audit"])

Before = Annotated[int | None, Query(ge=1, description="Page cursor: `next_before` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]


@router.get("/api/v1/me/access-log", response_model=AccessLogPage,
            summary="Who read or changed my data (or a family member's I guard)")
def my_access_log(
    ctx: ResidentSelf,
    member: Annotated[str | None, Query(description="EHC ID of a family member bound to you")] = None,
    before: Before = None,
    limit: Limit = 50,
) -> AccessLogPage:
    person_id = ctx.actor.id
    if member is not None:  # only a family member bound to this resident; any other card is "not found"
        card, _ = me.guarded_card(ctx, member)
        person_id = card.person_id
    page = service.access_log_for_person(ctx, person_id, before=before, limit=limit)
    return AccessLogPage(items=[access_log_entry(e) for e in page.events], next_before=page.next_before)


@router.get("/api/v1/audit/events", response_model=AuditPage, summary="Search the audit trail (auditors)")
def search_events(
    ctx: AuditReader,
    ehc_id: Annotated[str | None, Query(description="Events about this card's holder (and anyone merged into them)")] = None,
    actor_id: str | None = None,
    institution_id: str | None = None,
    purpose: str | None = None,
    action: Literal["read", "change"] | None = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive), with a time zone")] = None,
    until: Annotated[datetime | None, Query(description="Up to this time (exclusive), with a time zone")] = None,
    before: Before = None,
    limit: Limit = 50,
) -> AuditPage:
    filters = service.Filters(
        person_ids=service.person_ids_for_card(ctx, ehc_id) if ehc_id else None,
        actor_id=actor_id, institution_id=institution_id, purpose=purpose, action=action, since=since, until=until,
    )
    page = service.search(ctx, filters, before=before, limit=limit)
    return AuditPage(items=[AuditEventOut.model_validate(e, from_attributes=True) for e in page.events],
                     next_before=page.next_before)


# The shaping is ``schemas.access_log_entry`` (the resident's page uses it too); the old name stays.
_entry = access_log_entry
