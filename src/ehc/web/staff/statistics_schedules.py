"""The report scheduler: an operator schedules the national daily card-use report or an indicator's
table for their region, daily or weekly, as CSV or Parquet; sees their region's schedules and the
files delivered; runs one now, pauses, resumes or deletes it; downloads a file.

The API's rules apply (``statistics.auth.StatsReader``; the region scope, the due days and the
audit trail of ``statistics.service``): another region's schedule or file is "not found".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from ...kit.clock import CHINA
from ...kit.errors import NotFound, Problem
from ...statistics import service as stats
from .. import i18n
from ..core import PageRoute
from ..forms import FormState, require_csrf, see_other
from .common import Staff, staff_page
from .statistics import StatsPage

router = APIRouter(route_class=PageRoute, include_in_schema=False)
BASE = "/staff/statistics/schedules"
ACTIONS = {"pause": "paused", "resume": "active", "delete": "deleted"}  # and "run"
FIELDS = ("report", "indicator", "by", "period", "region", "frequency", "weekday", "format", "send_upstream")
RowId = Annotated[int, Path(ge=1, le=2**62)]


def _message(t: i18n.Translator, problem: Problem) -> str:
    key = f"statistics.errors.{problem.code}"
    return t(key) if t.has(key) else problem.detail


def _what(t: i18n.Translator, schedule: Any) -> str:
    if schedule.report == "daily_report":
        return t("statistics.schedules.reports.daily_report")
    parts = [t(f"statistics.indicators.{schedule.indicator}")]
    if schedule.breakdown:
        parts.append(t(f"statistics.breakdowns.{schedule.breakdown}"))
    parts.append(t(f"statistics.periods.{schedule.period}"))
    return " · ".join(parts)


def _when(t: i18n.Translator, schedule: Any) -> str:
    if schedule.frequency == "daily":
        return t("statistics.schedules.every_day")
    return t("statistics.schedules.every_weekday", weekday=t(f"statistics.schedules.weekdays.{schedule.weekday}"))


def _page(request: Request, staff: Staff, state: FormState | None = None, status_code: int = 200) -> HTMLResponse:
    t = i18n.for_request(request)
    ctx = staff.ctx
    scope = stats.operator_region(ctx)
    schedules = stats.schedules_of(ctx)
    upward = {s.id for s in schedules if s.send_upstream}
    rows = [{"id": s.id, "what": _what(t, s), "region": s.region_code or t("statistics.national"),
             "when": _when(t, s), "format": s.format.upper() + (" ↑" if s.send_upstream else ""), "status": s.status,
             "status_label": t(f"statistics.schedules.statuses.{s.status}")} for s in schedules]
    files = [{"schedule": d.schedule_id, "due_on": d.due_on.isoformat(), "start": d.start.isoformat(),
              "end": d.end.isoformat(), "name": d.path.rsplit("/", 1)[-1], "size": d.size,
              "href": f"{BASE}/{d.schedule_id}/deliveries/{d.id}", "sending": _sending(t, d, upward)}
             for d in stats.deliveries_of(ctx, [s.id for s in schedules], limit=100)]
    breakdowns = sorted({b for options in stats.INDICATORS.values() for b in options})
    return staff_page(
        request, staff, "staff_statistics_schedules.html", status_code, nav="staff_statistics",
        scope=scope, schedules=rows, files=files, state=state or FormState(values={"report": "daily_report",
                                                                                  "frequency": "daily",
                                                                                  "format": "csv"}),
        reports=[(r, t(f"statistics.schedules.reports.{r}")) for r in stats.REPORTS],
        indicators=[(i, t(f"statistics.indicators.{i}")) for i in stats.INDICATORS],
        breakdowns=[(b, t(f"statistics.breakdowns.{b}")) for b in breakdowns],
        periods=[(p, t(f"statistics.periods.{p}")) for p in stats.SCHEDULE_PERIODS],
        frequencies=[(f, t(f"statistics.schedules.frequencies.{f}")) for f in stats.FREQUENCIES],
        weekdays=[(str(n), t(f"statistics.schedules.weekdays.{n}")) for n in range(7)],
        formats=[(f, f.upper()) for f in stats.FORMATS], upstream=bool(ctx.settings.upstream_url))


def _sending(t: i18n.Translator, delivery: Any, upward: set[int]) -> str:
    """Where a file stands on its way to the upper-level platform ("" for a schedule that keeps it here)."""
    if delivery.schedule_id not in upward and delivery.send_attempts == 0:
        return ""
    if delivery.sent_at is not None:
        return t("statistics.schedules.sent", at=delivery.sent_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M"))
    if delivery.send_error:
        return t("statistics.schedules.send_failed", tries=delivery.send_attempts, error=delivery.send_error)
    return t("statistics.schedules.send_waiting")


@router.get(BASE, response_class=HTMLResponse)
def schedules_page(request: Request, staff: StatsPage) -> HTMLResponse:
    return _page(request, staff)


@router.post(BASE, response_class=HTMLResponse)
def create_schedule(request: Request, staff: StatsPage,
                    report: Annotated[str, Form(max_length=16)] = "",
                    indicator: Annotated[str, Form(max_length=24)] = "",
                    by: Annotated[str, Form(max_length=24)] = "",
                    period: Annotated[str, Form(max_length=8)] = "",
                    region: Annotated[str, Form(max_length=6)] = "",
                    frequency: Annotated[str, Form(max_length=8)] = "daily",
                    weekday: Annotated[str, Form(max_length=1)] = "",
                    format: Annotated[str, Form(max_length=8)] = "csv",  # noqa: A002 - the form field's name
                    send_upstream: Annotated[str, Form(max_length=3)] = "",
                    csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    values = {"report": report, "indicator": indicator, "by": by, "period": period, "region": region.strip(),
              "frequency": frequency, "weekday": weekday, "format": format, "send_upstream": send_upstream}
    table = report == "table"  # the indicator's fields are sent whichever report is chosen: a table's only
    request_ = stats.ScheduleRequest(
        report=report, frequency=frequency, weekday=int(weekday) if weekday.isdigit() else None, format=format,
        indicator=indicator if table else None, by=(by or None) if table else None, period=period if table else None,
        region=values["region"] or None, send_upstream=send_upstream == "yes")
    try:
        made = stats.create_schedule(staff.ctx, request_)
    except Problem as problem:  # refused before anything is written: the form again, with why
        t = i18n.for_request(request)
        state = FormState(values=values, form="schedule")
        fields = [e.get("field", "") for e in problem.errors]
        for name in fields or [""]:
            state.add(name if name in FIELDS else "", _message(t, problem))
        return _page(request, staff, state, problem.status)
    return see_other(request, BASE, "schedule_created", str(made.id))


@router.post(f"{BASE}/{{schedule_id}}/{{action}}", response_class=HTMLResponse)
def schedule_action(request: Request, staff: StatsPage, schedule_id: RowId, action: str,
                    csrf_token: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    if action == "run":
        made = stats.run_schedule_now(staff.ctx, schedule_id)
        return see_other(request, BASE, "schedule_run", str(len(made)))
    if action not in ACTIONS:
        raise NotFound("No such action.", code="not_found")
    stats.set_schedule_status(staff.ctx, schedule_id, ACTIONS[action])
    return see_other(request, BASE, f"schedule_{action}", str(schedule_id))


@router.get(f"{BASE}/{{schedule_id}}/deliveries/{{delivery_id}}")
def delivery_file(staff: StatsPage, schedule_id: RowId, delivery_id: RowId) -> Response:
    schedule, row, body = stats.delivery_file(staff.ctx, schedule_id, delivery_id)
    return Response(body, media_type=stats.MEDIA_TYPES[schedule.format],
                    headers={"Content-Disposition": f'attachment; filename="{row.path.rsplit("/", 1)[-1]}"',
                             "Cache-Control": "no-store"})
