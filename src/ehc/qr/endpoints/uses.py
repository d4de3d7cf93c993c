"""Card-use API: thin. Terminals upload offline uses in batches; institutions and the commission's
regions monitor uses (``qr/uses.py`` has the rules)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, SkipValidation, ValidationError

from ...kit.errors import Invalid, Problem
from .. import service
from ..auth import CardUseMonitor, QRVerifier

router = APIRouter(tags=["card uses"])


# -- shapes -------------------------------------------------------------------------------------

class OfflineUseIn(BaseModel):
    code: str = Field(max_length=1024, description="the scanned text, EHC1: or EHCM1:")
    scene: str = Field(max_length=7, description="care step code (docs/codes.md), e.g. 0101011")
    channel: str = Field(max_length=4, description="channel code, e.g. 0200 (kiosk)")
    terminal_id: str = Field(min_length=1, max_length=32, description="the institution's registered terminal")
    department: str | None = Field(default=None, max_length=8)
    at: datetime = Field(description="when the terminal scanned the code, ISO 8601 with an offset")


class BatchIn(BaseModel):
    # Each use is checked on its own (``upload_batch``): one malformed entry of a terminal's queue is
    # answered ``rejected`` with ``use_invalid``, never a 422 for the batch, so a queue cannot wedge.
    uses: list[SkipValidation[OfflineUseIn]] = Field(description=f"1 to {service.MAX_BATCH} offline card uses")


class BatchItemOut(BaseModel):
    index: int = Field(description="position of the item in the request")
    outcome: service.Outcome = Field(description="recorded | duplicate | replay | rejected")
    use_id: int | None = Field(description="the stored use (for a duplicate: the one stored first)")
    ehc_id: str | None = None
    code: str | None = Field(default=None, description="a rejected item's problem code, e.g. qr_expired")
    detail: str | None = None


class BatchOut(BaseModel):
    items: list[BatchItemOut]
    counts: dict[str, int] = Field(description="items per outcome")


class CardUseRowOut(BaseModel):
    id: int
    at: datetime = Field(description="when the card was scanned")
    recorded_at: datetime = Field(description="when the platform learnt of it (later for offline uses)")
    scene: str
    scene_label: str
    channel: str
    institution_id: str | None
    region_code: str | None
    terminal_id: str | None
    department: str | None
    code_type: int = Field(description="0 dynamic, 1 static")
    offline: bool
    replay: bool = Field(description="a dynamic code seen before elsewhere (docs/qr-format.md §9.1)")
    actor_kind: str = Field(description="staff or machine (a hospital system)")


class CardUsePageOut(BaseModel):
    items: list[CardUseRowOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page; null at the end")


class SummaryRowOut(BaseModel):
    day: date | None = None
    scene: str | None = None
    scene_label: str | None = None
    institution_id: str | None = None
    institution_name: str | None = None
    region_code: str | None = None
    uses: int
    offline: int
    replays: int


class SummaryOut(BaseModel):
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    group: service.Grouping
    total: int
    rows: list[SummaryRowOut]


def row_out(use) -> CardUseRowOut:
    return CardUseRowOut(id=use.id, at=use.at, recorded_at=use.recorded_at, scene=use.scene,
                         scene_label=service.SCENES.get(use.scene, use.scene), channel=use.channel,
                         institution_id=use.institution_id, region_code=use.region_code, terminal_id=use.terminal_id,
                         department=use.department, code_type=use.code_type, offline=bool(use.offline),
                         replay=bool(use.replay), actor_kind=use.actor_kind)


def summary_out(summary: service.Summary) -> SummaryOut:
    rows = [SummaryRowOut(day=r.day, scene=r.scene, scene_label=r.scene_label, institution_id=r.institution_id,
                          institution_name=r.institution_name, region_code=r.region_code, uses=r.uses,
                          offline=r.offline, replays=r.replays) for r in summary.rows]
    return SummaryOut(**{"from": summary.start}, to=summary.end, group=summary.grouping, total=summary.total,
                      rows=rows)


# -- filters shared by the list and the summary ---------------------------------------------------

def _filters(
    institution_id: Annotated[str | None, Query(max_length=24)] = None,
    region: Annotated[str | None, Query(max_length=6, description="GB/T 2260 code; 510100 covers 5101xx")] = None,
    start: Annotated[datetime | None, Query(alias="from", description="inclusive, ISO 8601 with offset")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="exclusive, ISO 8601 with offset")] = None,
    scene: Annotated[str | None, Query(max_length=7)] = None,
    channel: Annotated[str | None, Query(max_length=4)] = None,
    offline: bool | None = None,
    replay: bool | None = None,
) -> service.Filters:
    return service.Filters(institution_id=institution_id, region=region, start=start, end=end, scene=scene,
                        channel=channel, offline=offline, replay=replay)


UseFilters = Annotated[service.Filters, Depends(_filters)]


# -- routes -------------------------------------------------------------------------------------

def _offline_use(raw: object) -> service.OfflineUse | Problem:
    """One uploaded use, or the problem with it (the batch goes on without it)."""
    try:
        use = raw if isinstance(raw, OfflineUseIn) else OfflineUseIn.model_validate(raw)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'use'}: {e['msg']}" for e in exc.errors()[:3])
        return Invalid(f"This use is malformed ({where}).", code="use_invalid")
    return service.OfflineUse(code=use.code, scene=use.scene, channel=use.channel, terminal_id=use.terminal_id,
                              department=use.department, at=use.at)


@router.post("/api/v1/qr/uses/batch", response_model=BatchOut,
             summary="Upload card uses a terminal verified offline; verified again, deduplicated, replays flagged")
def upload_batch(body: BatchIn, ctx: QRVerifier) -> BatchOut:
    service.check_batch_size(len(body.uses))
    items = [_offline_use(u) for u in body.uses]
    done = service.upload(ctx, items)
    return BatchOut(items=[BatchItemOut(index=i.index, outcome=i.outcome, use_id=i.use_id, ehc_id=i.ehc_id,
                                        code=i.problem, detail=i.detail) for i in done.items],
                    counts=done.counts)


@router.get("/api/v1/card-uses", response_model=CardUsePageOut,
            summary="Card uses at the institutions in your reach, newest first (no card ids, no people)")
def list_card_uses(ctx: CardUseMonitor, filters: UseFilters, limit: int = Query(50, ge=1, le=service.MAX_USES_PAGE),
                   cursor: Annotated[str | None, Query(max_length=200)] = None) -> CardUsePageOut:
    page = service.list_uses(ctx, filters, limit=limit, cursor=cursor)
    return CardUsePageOut(items=[row_out(u) for u in page.items], next_cursor=page.next_cursor)


@router.get("/api/v1/card-uses/summary", response_model=SummaryOut, response_model_by_alias=True,
            summary="Counts of card uses in your reach, by day and care step or by institution")
def card_use_summary(ctx: CardUseMonitor, filters: UseFilters,
                     group: service.Grouping = service.Grouping.DAY) -> SummaryOut:
    return summary_out(service.summarise(ctx, filters, group))
