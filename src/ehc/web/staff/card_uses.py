"""The card-use monitoring page: where and for what cards were used, within the signed-in staff
member's reach (their institution, their region, or everywhere), with filters and a summary.

Same rules as ``GET /api/v1/card-uses`` (the role check of ``CardUseMonitor``, the reach of
``qr.uses``); like the API, the page shows no card ids and no people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ...institutions import service as institutions
from ...kit.codes import CHANNEL_LABELS, Channel
from ...kit.errors import Invalid, Problem, field_error
from ...qr import service as qr
from ...qr.service import SCAN_CHANNELS, SCENES
from ...qr.auth import CardUseMonitor
from .. import i18n
from ..core import CHINA, PageRoute
from .common import Staff, staff_page, page_under


router = APIRouter(route_class=PageRoute, include_in_schema=False)
PAGE_SIZE = 50
YES_NO = ("", "1", "0")

MonitorPage = page_under(CardUseMonitor)


@dataclass(frozen=True)
class PageFilters:
    """The form's values as typed, kept to fill the form again and to build links."""

    institution_id: str = ""
    region: str = ""
    start: str = ""  # a day, yyyy-mm-dd, China time
    end: str = ""  # the last day included
    scene: str = ""
    channel: str = ""
    offline: str = ""  # "" any, "1" yes, "0" no
    replay: str = ""
    group: str = qr.Grouping.DAY.value

    def query(self, **changes: str) -> str:
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v})

    def to_service(self) -> qr.Filters:
        return qr.Filters(
            institution_id=self.institution_id or None, region=self.region or None,
            start=_day_start(self.start, "from"), end=_day_end(self.end, "to"),
            scene=self.scene or None, channel=self.channel or None,
            offline=None if self.offline == "" else self.offline == "1",
            replay=None if self.replay == "" else self.replay == "1")


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("A day is written yyyy-mm-dd.", code="day_invalid",
                      errors=[field_error(name, "day_invalid", "yyyy-mm-dd")]) from None


def _day_start(value: str, name: str) -> datetime | None:
    day = _day(value, name)
    return datetime.combine(day, time(), CHINA) if day else None


def _day_end(value: str, name: str) -> datetime | None:
    day = _day(value, name)
    return datetime.combine(day + timedelta(days=1), time(), CHINA) if day else None


def _choice(value: str, allowed: tuple[str, ...] | set[str]) -> str:
    return value if value in allowed else ""


@router.get("/staff/card-uses", response_class=HTMLResponse)
def card_uses_page(
    request: Request,
    staff: MonitorPage,
    institution_id: Annotated[str, Query(max_length=24)] = "",
    region: Annotated[str, Query(max_length=6)] = "",
    start: Annotated[str, Query(alias="from", max_length=10)] = "",
    end: Annotated[str, Query(alias="to", max_length=10)] = "",
    scene: Annotated[str, Query(max_length=7)] = "",
    channel: Annotated[str, Query(max_length=4)] = "",
    offline: Annotated[str, Query(max_length=1)] = "",
    replay: Annotated[str, Query(max_length=1)] = "",
    group: Annotated[str, Query(max_length=12)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    t = i18n.for_request(request)
    filters = PageFilters(
        institution_id=institution_id.strip(), region=region.strip(), start=start, end=end,
        scene=_choice(scene, tuple(SCENES)), channel=_choice(channel, {str(c) for c in SCAN_CHANNELS}),
        offline=_choice(offline, YES_NO), replay=_choice(replay, YES_NO),
        group=_choice(group, tuple(g.value for g in qr.Grouping)) or qr.Grouping.DAY.value)
    context: dict[str, Any] = {"filters": filters, "error": None, "summary": None, "rows": [], "older": None}
    try:
        service_filters = filters.to_service()
        summary = qr.summarise(staff.ctx, service_filters, qr.Grouping(filters.group))
        found = qr.list_uses(staff.ctx, service_filters, limit=PAGE_SIZE, cursor=cursor or None)
    except Invalid as problem:  # a filter the service refuses: say so above the form, show nothing
        # (an institution out of reach is a 404 NotFound and gets the error page, as the API answers)
        context["error"] = _message(t, problem)
        return _render(request, staff, t, context, 422)
    names = _institution_names(staff, [u.institution_id for u in found.items])
    context["summary"] = _summary_view(t, summary)
    context["rows"] = [_row_view(t, u, names) for u in found.items]
    context["older"] = f"/staff/card-uses?{filters.query(cursor=found.next_cursor)}" if found.next_cursor else None
    return _render(request, staff, t, context)


def _render(request: Request, staff: Staff, t: i18n.Translator, context: dict[str, Any],
            status_code: int = 200) -> HTMLResponse:
    commission = staff.institution is None
    return staff_page(
        request, staff, "staff_card_uses.html", status_code, nav="staff_card_uses", reach=_reach_label(t, staff),
        commission=commission, scenes=_scene_options(t), channels=_channel_options(t),
        institutions=_institution_options(t, staff) if commission else [],
        group_links={g.value: f"/staff/card-uses?{context['filters'].query(group=g.value)}" for g in qr.Grouping},
        **context)


def _message(t: i18n.Translator, problem: Problem) -> str:
    for key in (f"card_uses.errors.{problem.code}", f"errors.{problem.code}"):
        if t.has(key):
            return t(key)
    return problem.detail


def _reach_label(t: i18n.Translator, staff: Staff) -> str:
    if staff.institution is not None:
        return t("card_uses.reach_institution", name=staff.institution.name)
    region = staff.account.region_code
    if region and not staff.ctx.actor.roles & {"platform_admin"}:
        return t("card_uses.reach_region", region=region)
    return t("card_uses.reach_everywhere")


def scene_label(t: i18n.Translator, scene: str | None) -> str:
    if not scene:
        return ""
    key = f"card_uses.scenes.{scene}"
    return t(key) if t.has(key) else SCENES.get(scene, scene)


def channel_label(t: i18n.Translator, channel: str) -> str:
    try:
        labels = CHANNEL_LABELS[Channel(channel)]
    except (KeyError, ValueError):
        return channel
    return labels[1 if t.lang == "zh" else 0]


def _scene_options(t: i18n.Translator) -> list[tuple[str, str]]:
    return [(code, f"{code} · {scene_label(t, code)}") for code in SCENES]


def _channel_options(t: i18n.Translator) -> list[tuple[str, str]]:
    return [(c.value, f"{c.value} · {channel_label(t, c.value)}") for c in sorted(SCAN_CHANNELS)]


def _institution_options(t: i18n.Translator, staff: Staff) -> list[tuple[str, str]]:
    items, _ = institutions.list_institutions(staff.ctx, limit=institutions.MAX_PAGE)
    return [(i.id, f"{i.name} ({i.region_code})") for i in items]


def _institution_names(staff: Staff, ids: list[str | None]) -> dict[str, str]:
    wanted = {i for i in ids if i}
    if staff.institution is not None:
        return {staff.institution.id: staff.institution.name} if wanted else {}
    return {i: institution.name for i in wanted
            if (institution := institutions.find_institution(staff.ctx.session, i)) is not None}


def _when(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _row_view(t: i18n.Translator, use: Any, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": use.id,
        "at": _when(use.at),
        "recorded_at": _when(use.recorded_at) if use.offline else "",
        "institution": names.get(use.institution_id, use.institution_id or ""),
        "terminal_id": use.terminal_id or "",
        "department": use.department or "",
        "scene": scene_label(t, use.scene),
        "scene_code": use.scene,
        "channel": channel_label(t, use.channel),
        "code_type": t("card_uses.code_static") if use.code_type == 1 else t("card_uses.code_dynamic"),
        "offline": bool(use.offline),
        "replay": bool(use.replay),
    }


def _summary_view(t: i18n.Translator, summary: qr.Summary) -> dict[str, Any]:
    rows = [{
        "day": r.day.isoformat() if r.day else "",
        "scene": scene_label(t, r.scene),
        "institution": r.institution_name or r.institution_id or "",
        "region_code": r.region_code or "",
        "uses": r.uses, "offline": r.offline, "replays": r.replays,
    } for r in summary.rows]
    return {"rows": rows, "total": summary.total, "group": summary.grouping.value,
            "start": summary.start.astimezone(CHINA).date().isoformat(),
            "end": (summary.end.astimezone(CHINA) - timedelta(microseconds=1)).date().isoformat()}
