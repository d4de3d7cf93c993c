"""``ehc appointments``: what an operator does with schedules and bookings outside the pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from ..appointments import service
from ..kit.clock import china_today, in_china
from ..kit.context import Ctx
from .common import CONSOLE, Operator, console, ctx_run, parse_day

app = typer.Typer(help="Appointments: publish sessions, suspend, sweep holds and no-shows, regional policy.",
                  no_args_is_help=True)


@app.command("publish")
def publish(
    institution: Annotated[str, typer.Argument(help="Institution id")],
    first: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD, China); default today")] = None,
    days: Annotated[int, typer.Option(help="How many days from the first")] = 14,
    operator: Operator = "cli",
) -> None:
    """Publish sessions from the institution's weekly templates (holidays skipped; publishing twice is harmless)."""
    start = parse_day(first, "--first") if first else china_today()

    def do(ctx: Ctx) -> None:
        made = service.publish(ctx, start, start + timedelta(days=days - 1))
        console.print(f"{len(made)} session(s) published")

    ctx_run(do, operator, CONSOLE, institution)


@app.command("sessions")
def sessions(
    institution: Annotated[str, typer.Argument(help="Institution id")],
    first: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD); default today")] = None,
    days: int = 7,
) -> None:
    """The institution's sessions."""
    start = parse_day(first, "--first") if first else china_today()

    def do(ctx: Ctx) -> None:
        table = Table("id", "starts", "department", "doctor", "category", "fee (fen)", "status")
        for s in service.week(ctx, start, days):
            table.add_row(s.id, in_china(s.starts_at).strftime("%Y-%m-%d %H:%M"), s.department_code, s.doctor,
                          s.category, str(s.fee_fen), s.status)
        console.print(table)

    ctx_run(do, "cli", CONSOLE, institution)


@app.command("suspend")
def suspend(
    institution: Annotated[str, typer.Argument(help="Institution id")],
    session_id: Annotated[str, typer.Argument(help="Session id")],
    reason: Annotated[str, typer.Option(help="Told to every resident booked")],
    operator: Operator = "cli",
) -> None:
    """Suspend a session (停诊): its bookings are cancelled and each resident told, with the next free periods."""
    def do(ctx: Ctx) -> None:
        effects = service.suspend(ctx, session_id, reason)
        console.print(f"session suspended; {len(effects)} booking(s) cancelled and told")

    ctx_run(do, operator, CONSOLE, institution)


@app.command("sweep")
def sweep() -> None:
    """Expire unconfirmed holds (offering their places to waitlists), mark no-shows, send tomorrow's
    reminders: everything due, however long the platform was down."""
    def do(ctx: Ctx) -> None:
        done = service.sweep(ctx)
        console.print(f"{done.expired} hold(s) expired, {done.no_shows} no-show(s), {done.reminders} reminder(s)")

    ctx_run(do, "appointments", CONSOLE, None)


@app.command("policy")
def policy(
    region: Annotated[str, typer.Argument(help="GB/T 2260 region code, 2, 4 or 6 digits")],
    per_department_per_day: int | None = None,
    outstanding: int | None = None,
    cancellations: int | None = None,
    cancellation_window_days: int | None = None,
    no_shows: int | None = None,
    no_show_window_days: int | None = None,
    no_show_suspension_days: int | None = None,
    hold_minutes: int | None = None,
    cutoff_minutes: int | None = None,
) -> None:
    """Set a region's booking rules (unset ones keep the broader region's or the default)."""
    values = {k: v for k, v in dict(per_department_per_day=per_department_per_day, outstanding=outstanding,
                                    cancellations=cancellations, cancellation_window_days=cancellation_window_days,
                                    no_shows=no_shows, no_show_window_days=no_show_window_days,
                                    no_show_suspension_days=no_show_suspension_days, hold_minutes=hold_minutes,
                                    cutoff_minutes=cutoff_minutes).items() if v is not None}

    def do(ctx: Ctx) -> None:
        service.set_policy(ctx, region, **values)
        console.print(f"policy of {region} set: {values}")

    ctx_run(do, "cli", CONSOLE, None)
