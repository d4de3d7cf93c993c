"""``ehc stats``: the analytical store (feed it, see how far it is), the national daily card-use
report, the scheduled reports that are due, the Parquet export and its aggregation on DuckDB or Spark
(docs/statistics.md)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..kit.codes import Channel
from ..kit.context import Actor
from ..kit.errors import Problem
from ..statistics import service
from .common import console, err, fail, open_platform, parse_day

app = typer.Typer(help="Statistics: feed the analytical store, daily reports, Parquet export.", no_args_is_help=True)


@app.command("refresh")
def stats_refresh(batch: Annotated[int, typer.Option(help="Events per transaction")] = service.BATCH) -> None:
    """Feed the store from every source, from its watermark on (safe to rerun, or to run twice at once)."""
    platform = open_platform()
    report = service.refresh(platform.db, batch=max(1, batch))
    for source, stored in report.stored.items():
        console.print(f"{source}: {stored} new events")


@app.command("status")
def stats_status() -> None:
    """How far the store has read each source."""
    platform = open_platform()
    with platform.db.session() as session:
        rows = service.status(session)
    table = Table("source", "last id read", "events stored", "updated")
    for row in rows:
        table.add_row(row["source"], str(row["last_id"]), str(row["events"]), str(row["updated_at"]))
    console.print(table)


@app.command("report")
def stats_report(
    day: Annotated[str, typer.Argument(help="The day (China time), yyyy-mm-dd")],
    region: Annotated[Optional[str], typer.Option(help="Only this GB/T 2260 region and below")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the CSV here instead of standard output")] = None,
    source: Annotated[Optional[Path], typer.Option(
        "--from", help="Read the aggregation job's output in this directory (ehc stats aggregate) instead of the store")
    ] = None,
) -> None:
    """The national daily card-use report of DAY (CSV: institution, care step, channel, terminal type, uses)."""
    when = parse_day(day)
    platform = open_platform()
    try:
        with platform.db.session() as session:
            ctx = platform.ctx(session, Actor.system("stats-report", Channel.CONSOLE))
            rows = service.daily_report(ctx, when, region, job_output=source)
    except Problem as problem:
        fail(problem)
    body = service.to_csv(rows) or ",".join(service.REPORT_FIELDS) + "\n"
    if out is None:
        sys.stdout.write(body)
    else:
        out.write_text(body, encoding="utf-8")
        err.print(f"{len(rows)} rows written to {out}")


@app.command("export")
def stats_export(
    directory: Annotated[Path, typer.Argument(help="The dataset's directory (day=/province= partitions)")],
    batch: Annotated[int, typer.Option(help="Rows per batch of files")] = 200_000,
) -> None:
    """Append the store's rows not yet exported to Parquet (exactly once, resumable)."""
    platform = open_platform()
    written, last = service.export_parquet(platform.db, directory, batch=max(1, batch))
    console.print(f"{written} rows exported; exported through row {last}")


@app.command("aggregate")
def stats_aggregate(
    directory: Annotated[Path, typer.Argument(help="The export's directory (ehc stats export DIR)")],
    engine: Annotated[str, typer.Option(help="duckdb (in-process) or spark (local mode)")] = "duckdb",
    out: Annotated[Optional[Path], typer.Option(help="Where the cube's Parquet goes (default DIR/_cube)")] = None,
    since: Annotated[str, typer.Option(help="Only the days from this one (yyyy-mm-dd)")] = "",
    load: Annotated[bool, typer.Option(help="Load the cube's partitions into the console's stats_cube")] = True,
) -> None:
    """Aggregate the Parquet export into the daily and the month cube (the same SQL on either engine) and load them."""
    if engine not in service.ENGINES:
        err.print(f"[red]error[/red] --engine is one of {', '.join(service.ENGINES)}")
        raise typer.Exit(2)
    platform = open_platform()
    try:
        done = service.aggregate(platform.db, directory, engine=engine, out=out, since=since, load=load)
    except Problem as problem:
        fail(problem)
    console.print(f"{engine}: {len(done.partitions)} day/province partitions written to {done.out}; "
                  f"{done.cells} cube cells loaded (daily and month cubes)")


@app.command("run-schedules")
def stats_run_schedules(
    day: Annotated[Optional[str], typer.Option(help="Run as on this China day (yyyy-mm-dd) instead of today")] = None,
) -> None:
    """Deliver the scheduled reports that are due (each schedule's due day once; safe to rerun)."""
    now = None
    if day:
        # Noon China time (04:00 UTC) of that day: the runner reads the China day from it.
        now = datetime.combine(parse_day(day, "--day"), time(4), tzinfo=UTC)
    platform = open_platform()
    done = service.run_schedules(platform.db, lambda session: platform.ctx(session, Actor.system("stats-schedules")),
                                 now=now)
    for schedule_id, due_on, path in done.made:
        console.print(f"schedule {schedule_id}, {due_on}: {path}")
    for schedule_id, due_on, code in done.failed:
        err.print(f"[red]schedule {schedule_id}, {due_on}: refused ({code})[/red]")
    for delivery_id, receipt in done.sending.sent:
        console.print(f"file {delivery_id} sent upward" + (f" (receipt {receipt})" if receipt else ""))
    for delivery_id, error in done.sending.failed:
        err.print(f"[yellow]file {delivery_id} not sent upward yet: {error} (tried again later)[/yellow]")
    console.print(f"{len(done.made)} reports delivered")
    if done.failed:
        raise typer.Exit(1)
