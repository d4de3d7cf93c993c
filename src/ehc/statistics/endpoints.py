"""The statistics API: tables (JSON, CSV, Parquet), the national daily card-use report, feeding."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from . import service
from .auth import StatsAdmin, StatsReader
from .schemas import ColumnOut, RefreshOut, ReportOut, ReportRowOut, RowOut, SourceOut, TableOut

router = APIRouter(tags=["statistics"])


def table_query(
    indicator: Annotated[str, Query(max_length=24)] = "card_uses",
    by: Annotated[str | None, Query(max_length=24)] = None,
    period: Annotated[str, Query(max_length=8)] = "month",
    region: Annotated[str | None, Query(max_length=6)] = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> service.Query:
    return service.Query(indicator=indicator, by=by or None, period=period, region=region or None, start=start,
                         end=end)


TableQuery = Annotated[service.Query, Depends(table_query)]


def table_out(table: service.Table) -> TableOut:
    p = table.protected
    return TableOut(
        indicator=table.query.indicator, by=table.query.by, period=table.query.period, region=table.region,
        start=table.start, end=table.end, threshold=p.threshold,
        columns=[ColumnOut(value=c, drill_region=table.drill.get(c), total=p.shown(("col", j)))
                 for j, c in enumerate(table.columns)],
        rows=[RowOut(period=r, cells=[table.shown(i, j) for j in range(len(table.columns))], total=p.shown(("row", i)))
              for i, r in enumerate(table.rows)],
        total=p.shown(("all",)))


def _file_name(table: service.Table, suffix: str) -> dict[str, str]:
    name = f"{table.query.indicator}-{table.query.by or 'total'}-{table.region or 'national'}-{table.start}-{table.end}"
    return {"Content-Disposition": f'attachment; filename="{name}.{suffix}"'}


@router.get("/api/v1/statistics/table", response_model=TableOut,
            summary="An indicator for your region (or a region below), by period and one breakdown; small counts withheld")
def statistics_table(ctx: StatsReader, query: TableQuery) -> TableOut:
    return table_out(service.table(ctx, query))


@router.get("/api/v1/statistics/table.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}}, summary="The same table as CSV (period, value, count)")
def statistics_table_csv(ctx: StatsReader, query: TableQuery) -> Response:
    table = service.table(ctx, query)
    return Response(service.to_csv(table.records()), media_type="text/csv; charset=utf-8",
                    headers=_file_name(table, "csv"))


@router.get("/api/v1/statistics/table.parquet", response_class=Response,
            responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
            summary="The same table as Parquet (period, value, count)")
def statistics_table_parquet(ctx: StatsReader, query: TableQuery) -> Response:
    table = service.table(ctx, query)
    return Response(service.to_parquet(table.records()), media_type="application/vnd.apache.parquet",
                    headers=_file_name(table, "parquet"))


@router.get("/api/v1/statistics/reports/daily/{day}.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}}, summary="The national daily card-use report, as CSV")
def daily_report_csv(ctx: StatsReader, day: date,
                     region: Annotated[str | None, Query(max_length=6)] = None) -> Response:
    rows = service.daily_report(ctx, day, region or None)
    body = service.to_csv(rows) or ",".join(service.REPORT_FIELDS) + "\n"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="card-uses-{day}.csv"'})


@router.get("/api/v1/statistics/reports/daily/{day}", response_model=ReportOut,
            summary="The national daily card-use report: uses by institution, care step, channel, terminal type")
def daily_report(ctx: StatsReader, day: date, region: Annotated[str | None, Query(max_length=6)] = None) -> ReportOut:
    rows = service.daily_report(ctx, day, region or None)
    return ReportOut(report_date=day, region=region or None, rows=[ReportRowOut(**r) for r in rows])


@router.post("/api/v1/statistics/refresh", response_model=RefreshOut,
             summary="Feed the analytical store from every source now (it also runs by itself)")
def refresh(ctx: StatsAdmin) -> RefreshOut:
    report = service.refresh_now(ctx)
    return RefreshOut(stored=report.stored, sources=[SourceOut(**s) for s in service.status(ctx.session)])
