"""The statistics API: tables (JSON, CSV, Parquet), the national daily card-use report, feeding, and
report schedules with their delivered files."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from . import service
from .auth import StatsAdmin, StatsReader
from .models import ReportDelivery, ReportSchedule
from .schemas import (ColumnOut, CoverageFigureOut, CoverageLineOut, CoverageOut, DeliveryOut, RefreshOut, ReportOut,
                      ReportRowOut, RowOut, RunOut, ScheduleIn, ScheduleOut, SourceOut, TableOut)

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


def _coverage_line(line: service.CoverageLine) -> CoverageLineOut:
    return CoverageLineOut(institution_id=line.institution_id, name=line.name, figures={
        group: CoverageFigureOut(covered=covered, population=population, share=share)
        for group, (covered, population, share) in line.figures.items()})


@router.get("/api/v1/statistics/coverage", response_model=CoverageOut,
            summary="Family-doctor coverage of the key populations, per centre of a region (small numbers protected)")
def coverage(ctx: StatsReader, region: Annotated[str | None, Query(max_length=6)] = None) -> CoverageOut:
    found = service.coverage(ctx, region or None)
    return CoverageOut(region=found.region, threshold=found.threshold,
                       centres=[_coverage_line(c) for c in found.centres], total=_coverage_line(found.total))


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


# -- report schedules ------------------------------------------------------------------------------

SCHEDULES = "/api/v1/statistics/schedules"
RowId = Annotated[int, Path(ge=1, le=2**62)]  # within a BIGINT: a larger number is a 422, not a database error


def schedule_out(schedule: ReportSchedule) -> ScheduleOut:
    return ScheduleOut(id=schedule.id, report=schedule.report, indicator=schedule.indicator, by=schedule.breakdown,
                       period=schedule.period, region=schedule.region_code, frequency=schedule.frequency,
                       weekday=schedule.weekday, format=schedule.format, status=schedule.status,
                       send_upstream=schedule.send_upstream, created_by=schedule.created_by, created_on=schedule.created_on)


def delivery_out(row: ReportDelivery) -> DeliveryOut:
    return DeliveryOut(id=row.id, schedule_id=row.schedule_id, due_on=row.due_on, start=row.start, end=row.end,
                       file_name=row.path.rsplit("/", 1)[-1], size=row.size, sha256=row.sha256,
                       created_at=row.created_at, download=f"{SCHEDULES}/{row.schedule_id}/deliveries/{row.id}/file",
                       sent_at=row.sent_at, send_attempts=row.send_attempts, next_send_at=row.next_send_at,
                       send_error=row.send_error, receipt=row.receipt)


@router.get(SCHEDULES, response_model=list[ScheduleOut], summary="Report schedules of your region and below")
def list_schedules(ctx: StatsReader) -> list[ScheduleOut]:
    return [schedule_out(s) for s in service.schedules_of(ctx)]


@router.post(SCHEDULES, response_model=ScheduleOut, status_code=201,
             summary="Schedule a report (the daily card-use report, or an indicator's table) daily or weekly")
def create_schedule(ctx: StatsReader, body: ScheduleIn) -> ScheduleOut:
    request = service.ScheduleRequest(report=body.report, frequency=body.frequency, weekday=body.weekday,
                                      format=body.format, indicator=body.indicator, by=body.by or None,
                                      period=body.period, region=body.region or None,
                                      send_upstream=body.send_upstream)
    return schedule_out(service.create_schedule(ctx, request))


@router.get(f"{SCHEDULES}/{{schedule_id}}", response_model=ScheduleOut, summary="A report schedule")
def get_schedule(ctx: StatsReader, schedule_id: RowId) -> ScheduleOut:
    return schedule_out(service.get_schedule(ctx, schedule_id))


@router.post(f"{SCHEDULES}/{{schedule_id}}/pause", response_model=ScheduleOut, summary="Pause a schedule")
def pause_schedule(ctx: StatsReader, schedule_id: RowId) -> ScheduleOut:
    return schedule_out(service.set_schedule_status(ctx, schedule_id, "paused"))


@router.post(f"{SCHEDULES}/{{schedule_id}}/resume", response_model=ScheduleOut, summary="Resume a paused schedule")
def resume_schedule(ctx: StatsReader, schedule_id: RowId) -> ScheduleOut:
    return schedule_out(service.set_schedule_status(ctx, schedule_id, "active"))


@router.delete(f"{SCHEDULES}/{{schedule_id}}", status_code=204, response_class=Response,
               summary="Delete a schedule (it runs no more; its delivered files stay on record)")
def delete_schedule(ctx: StatsReader, schedule_id: RowId) -> Response:
    service.set_schedule_status(ctx, schedule_id, "deleted")
    return Response(status_code=204)


@router.post(f"{SCHEDULES}/{{schedule_id}}/run", response_model=RunOut,
             summary="Deliver the schedule's due reports now (each due day once; nothing when none is due)")
def run_schedule(ctx: StatsReader, schedule_id: RowId) -> RunOut:
    return RunOut(made=[delivery_out(d) for d in service.run_schedule_now(ctx, schedule_id)])


@router.get(f"{SCHEDULES}/{{schedule_id}}/deliveries", response_model=list[DeliveryOut],
            summary="The files a schedule delivered, newest first")
def list_deliveries(ctx: StatsReader, schedule_id: RowId) -> list[DeliveryOut]:
    return [delivery_out(d) for d in service.deliveries_of(ctx, [schedule_id])]


@router.get(f"{SCHEDULES}/{{schedule_id}}/deliveries/{{delivery_id}}/file", response_class=Response,
            responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
            summary="A delivered report file (CSV or Parquet)")
def delivery_file(ctx: StatsReader, schedule_id: RowId, delivery_id: RowId) -> Response:
    schedule, row, body = service.delivery_file(ctx, schedule_id, delivery_id)
    return Response(body, media_type=service.MEDIA_TYPES[schedule.format],
                    headers={"Content-Disposition": f'attachment; filename="{row.path.rsplit("/", 1)[-1]}"',
                             "Cache-Control": "no-store"})
