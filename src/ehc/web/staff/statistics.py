"""The statistics console: an indicator for the operator's region and below, by period and one
breakdown, as a chart (plotly, its JavaScript served by the platform: the console works offline) and
a table, with drill-down by region and CSV / Parquet downloads.

The API's rules apply (``statistics.auth.StatsReader``, the region scope of ``statistics.service``);
every table is small-number protected and every query audited by the service.
"""

from __future__ import annotations

import json
import math
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...kit import boundaries
from ...kit.codes import CHANNEL_LABELS, Channel
from ...kit.errors import Forbidden, Invalid, Problem
from ...kit.regions import region_name, region_prefix
from ...qr.service import SCENES
from ...statistics import service as stats
from ...statistics.auth import StatsReader
from .. import i18n
from ..core import PageRoute
from .common import staff_page, page_under

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The console's figures: (indicator, breakdown) pairs offered as one-click views.
CHART_POLICY = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

FIGURES = (
    ("cards_issued", "channel"), ("cards_issued", "document_type"), ("cards_issued", "age_band"),
    ("cards_issued", "sex"), ("cards_by_status", "status"), ("cards_lost", "region"),
    ("cards_reissued", "region"), ("cards_cancelled", "region"),
    ("card_uses", "care_step"), ("card_uses", "channel"), ("card_uses", "terminal_type"),
    ("card_uses", "institution"), ("card_uses", "hour"), ("card_uses", "region"),
    ("bookings_made", "channel"), ("bookings_made", "institution"), ("booking_check_ins", "hour"),
    ("booking_no_shows", "institution"), ("waitlist_successes", "region"),
    ("contracts_signed", "institution"), ("contracts_by_status", "status"), ("follow_ups_delivered", "institution"),
    ("payments_insurance", "institution"), ("payments_bank", "institution"), ("records_published", "institution"),
    ("visits", "card"),
)


StatsPage = page_under(StatsReader)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise Invalid("A day is written yyyy-mm-dd.", code="day_invalid") from None


def page_query(
    indicator: Annotated[str, Query(max_length=24)] = "cards_issued",
    by: Annotated[str, Query(max_length=24)] = "channel",
    period: Annotated[str, Query(max_length=8)] = "month",
    region: Annotated[str, Query(max_length=6)] = "",
    start: Annotated[str, Query(alias="from", max_length=10)] = "",
    end: Annotated[str, Query(alias="to", max_length=10)] = "",
) -> dict[str, str]:
    return {"indicator": indicator, "by": by, "period": period, "region": region.strip(), "from": start, "to": end}


PageQuery = Annotated[dict[str, str], Depends(page_query)]


def _service_query(form: dict[str, str]) -> stats.Query:
    return stats.Query(indicator=form["indicator"], by=form["by"] or None, period=form["period"],
                       region=form["region"] or None, start=_day(form["from"]), end=_day(form["to"]))


def _link(form: dict[str, str], **changes: str) -> str:
    values = {**form, **changes}
    return urlencode({k: v for k, v in values.items() if v})


def value_label(t: i18n.Translator, by: str | None, value: str) -> str:
    if value == "unknown":
        return t("statistics.unknown")
    if by == "channel":
        try:
            return CHANNEL_LABELS[Channel(value)][1 if t.lang == "zh" else 0]
        except (KeyError, ValueError):
            return value
    if by == "care_step":
        key = f"card_uses.scenes.{value}"
        return t(key) if t.has(key) else SCENES.get(value, value)
    for group in ("status", "sex", "document_type", "terminal_type", "card"):
        if by == group and t.has(f"statistics.{group}s.{value}"):
            return t(f"statistics.{group}s.{value}")
    if by == "hour":
        return f"{int(value):02d}:00"
    if by == "region":
        name = region_name(value)
        return f"{name} {value}" if name else value
    return value


def _figure(t: i18n.Translator, table: stats.Table) -> dict[str, Any]:
    """A plotly figure of the published table: one bar series per breakdown value; a withheld cell is
    a gap whose hover text says "<5" or "x", never a number."""
    by = table.query.by
    data = []
    for j, column in enumerate(table.columns):
        shown = [table.shown(i, j) for i in range(len(table.rows))]
        data.append({"type": "bar", "name": value_label(t, by, column), "x": table.rows,
                     "y": [int(s) if s.isdigit() else None for s in shown], "text": shown,
                     "hovertemplate": "%{x}: %{text}<extra>%{fullData.name}</extra>"})
    return {"data": data, "layout": {
        "barmode": "stack", "height": 380, "margin": {"l": 50, "r": 10, "t": 10, "b": 60},
        "legend": {"orientation": "h", "y": -0.2}, "xaxis": {"type": "category"},
        "yaxis": {"title": {"text": t(f"statistics.indicators.{table.query.indicator}")}, "rangemode": "tozero"},
        "font": {"family": "system-ui, 'PingFang SC', 'Microsoft YaHei', sans-serif"}}}


# Five shades of one hue, light to dark: equal steps from 0 to the largest figure shown.
SHADES = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")


def _map(t: i18n.Translator, form: dict[str, str], table: stats.Table) -> dict[str, Any] | None:
    """The regions of a by-region table on a map: each coloured by its total over the period (the
    table's bottom row, so a withheld total is hatched there too, never a number) and linking to its
    own drill-down. None when the breakdown is not by region or no region has an outline."""
    if table.query.by != "region":
        return None
    drawn = boundaries.outlines([c for c in table.columns if c != "unknown"])
    if drawn is None:
        return None
    totals = {c: table.protected.shown(("col", j)) for j, c in enumerate(table.columns)}
    top = max((int(v) for v in totals.values() if v.isdigit()), default=0)

    def shade(value: str) -> str:
        return SHADES[min(len(SHADES) - 1, int(value) * len(SHADES) // (top + 1))] if value.isdigit() else ""

    step = (top + 1) / len(SHADES)
    legend = [{"colour": colour, "label": f"{math.ceil(i * step)}–{max(math.ceil(i * step), math.ceil((i + 1) * step) - 1)}"}
              for i, colour in enumerate(SHADES)] if top else []
    regions = [{"code": s.code, "path": s.path, "fill": shade(totals[s.code]), "shown": totals[s.code],
                "label": value_label(t, "region", s.code), "name": region_name(s.code) or s.code,
                "x": s.label_at[0], "y": s.label_at[1],
                "drill": f"/staff/statistics?{_link(form, region=table.drill[s.code])}" if s.code in table.drill else None}
               for s in drawn.shapes]
    return {"width": drawn.width, "height": drawn.height, "regions": regions, "legend": legend,
            "missing": [value_label(t, "region", c) for c in drawn.missing]}


def _breadcrumbs(t: i18n.Translator, form: dict[str, str], region: str | None, scope: str | None) -> list[tuple[str, str]]:
    """Links up the region hierarchy, from the operator's own region to the one shown."""
    crumbs = []
    if scope is None:
        crumbs.append((t("statistics.national"), _link(form, region="")))
    if region:
        prefix = region_prefix(region)
        for length in (2, 4, 6):
            if length <= len(prefix):
                code = prefix[:length].ljust(6, "0")
                if scope is None or len(region_prefix(scope)) <= length:
                    crumbs.append((code, _link(form, region=code)))
    return crumbs


def _view(t: i18n.Translator, form: dict[str, str], table: stats.Table) -> dict[str, Any]:
    p = table.protected
    by = table.query.by
    columns = [{"value": c, "label": value_label(t, by, c), "total": p.shown(("col", j)),
                "drill": f"/staff/statistics?{_link(form, region=table.drill[c])}" if c in table.drill else None}
               for j, c in enumerate(table.columns)]
    rows = [{"period": r, "cells": [table.shown(i, j) for j in range(len(table.columns))], "total": p.shown(("row", i))}
            for i, r in enumerate(table.rows)]
    return {"columns": columns, "rows": rows, "total": p.shown(("all",)), "threshold": p.threshold,
            "start": table.start.isoformat(), "end": table.end.isoformat(), "region": table.region,
            "figure": json.dumps(_figure(t, table), ensure_ascii=False, separators=(",", ":")),
            "map": _map(t, form, table)}


def _message(t: i18n.Translator, problem: Problem) -> str:
    key = f"statistics.errors.{problem.code}"
    return t(key) if t.has(key) else problem.detail


@router.get("/staff/statistics", response_class=HTMLResponse)
def statistics_page(request: Request, staff: StatsPage, form: PageQuery) -> HTMLResponse:
    t = i18n.for_request(request)
    scope = stats.operator_region(staff.ctx)
    context: dict[str, Any] = {"form": form, "error": None, "table": None, "scope": scope}
    status_code = 200
    try:
        table = stats.table(staff.ctx, _service_query(form))
        context["table"] = _view(t, form, table)
        context["crumbs"] = _breadcrumbs(t, form, table.region, scope)
    except (Invalid, Forbidden) as problem:  # a question refused: say why above the form
        context["error"] = _message(t, problem)
        context["crumbs"] = []
        status_code = 422 if isinstance(problem, Invalid) else 403
    response = staff_page(
        request, staff, "staff_statistics.html", status_code, nav="staff_statistics",
        figures=[{"label": t(f"statistics.indicators.{i}") + " · " + t(f"statistics.breakdowns.{b}"),
                  "href": f"/staff/statistics?{_link(form, indicator=i, by=b)}",
                  "current": (i, b) == (form["indicator"], form["by"])} for i, b in FIGURES],
        indicators=[(i, t(f"statistics.indicators.{i}")) for i in stats.INDICATORS],
        breakdowns=[(b, t(f"statistics.breakdowns.{b}")) for b in stats.INDICATORS.get(form["indicator"], ())],
        periods=[(p, t(f"statistics.periods.{p}")) for p in stats.PERIODS],
        downloads={"csv": f"/staff/statistics.csv?{_link(form)}", "parquet": f"/staff/statistics.parquet?{_link(form)}"},
        **context)
    # plotly.js positions its tooltips and legends with style elements it adds itself: this page alone
    # lets styles in (scripts stay 'self' only, and the page sends none inline).
    response.headers["Content-Security-Policy"] = CHART_POLICY
    return response


@router.get("/staff/statistics.csv")
def statistics_csv(staff: StatsPage, form: PageQuery) -> Response:
    table = stats.table(staff.ctx, _service_query(form))
    return Response(stats.to_csv(table.records()), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{form["indicator"]}.csv"'})


@router.get("/staff/statistics.parquet")
def statistics_parquet(staff: StatsPage, form: PageQuery) -> Response:
    table = stats.table(staff.ctx, _service_query(form))
    return Response(stats.to_parquet(table.records()), media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": f'attachment; filename="{form["indicator"]}.parquet"'})


@lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()


@router.get("/staff/statistics/plotly.min.js")
def plotly_js() -> Response:
    """plotly.js from the installed plotly package: the console's charts need no internet."""
    return Response(_plotly_js(), media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/staff/statistics/coverage", response_class=HTMLResponse)
def coverage_page(request: Request, staff: StatsPage,
                  region: Annotated[str, Query(max_length=6)] = "") -> HTMLResponse:
    """Family-doctor coverage of the key populations, per centre of the region and for the region."""
    t = i18n.for_request(request)
    context: dict[str, Any] = {"coverage": None, "error": None, "region": region.strip(),
                               "scope": stats.operator_region(staff.ctx)}
    status_code = 200
    try:
        found = stats.coverage(staff.ctx, region.strip() or None)
        name = region_name(found.region)
        context["coverage"] = found
        context["region_label"] = f"{name} {found.region}" if name else found.region
    except (Invalid, Forbidden) as problem:
        context["error"] = _message(t, problem)
        status_code = 422 if isinstance(problem, Invalid) else 403
    return staff_page(request, staff, "staff_statistics_coverage.html", status_code, nav="staff_statistics",
                      groups=[population for population, _ in stats.COVERAGE_GROUPS], **context)
