"""``ehc family-doctors``: the daily job (expiry and renewal reminders), regional policies, teams and
coverage figures."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..family_doctors import service
from ..family_doctors.endpoints import coverage_out, policy_out
from ..kit.context import Ctx
from .common import CONSOLE, Operator, console, ctx_run, parse_day

app = typer.Typer(help="Family doctors: the daily job, regional policies, teams, coverage.", no_args_is_help=True)


@app.command("daily")
def daily(
    day: Annotated[Optional[str], typer.Option(help="The China calendar day to run for (default today), yyyy-mm-dd")] = None,
    operator: Operator = "cli",
) -> None:
    """End contracts past their term and text the renewal reminder to those in their last days
    (once each). Run it once a day (cron, a systemd timer); running it again the same day does nothing."""
    when = parse_day(day, "--day") if day else None

    def do(ctx: Ctx) -> None:
        report = service.run_daily(ctx, when)
        console.print_json(json.dumps({"reminded": report.reminded, "unreachable": report.unreachable,
                                       "expired": report.expired}))

    ctx_run(do, operator, CONSOLE, None)


@app.command("policy")
def policy(
    region: Annotated[str, typer.Argument(help="GB/T 2260 region code")],
    capacity: Annotated[Optional[int], typer.Option(help="Residents per lead doctor")] = None,
    term_days: Annotated[int, typer.Option(help="Days a contract runs")] = 365,
    reminder_days: Annotated[int, typer.Option(help="Days before the end the reminder goes out")] = 30,
    reason: Annotated[Optional[list[str]], typer.Option(help="A reason to change team mid-term (repeat)")] = None,
    operator: Operator = "cli",
) -> None:
    """Show the policy in force in a region, or set it with --capacity."""
    def do(ctx: Ctx) -> None:
        if capacity is None:
            found = service.policy_for(ctx, region)
        else:
            found = service.set_policy(ctx, region, capacity_per_lead=capacity, term_days=term_days,
                                       reminder_days=reminder_days, change_reasons=reason)
        console.print_json(policy_out(found).model_dump_json())

    ctx_run(do, operator, CONSOLE, None)


@app.command("teams")
def teams(institution: str) -> None:
    """A centre's teams: lead doctor, members, area, contracts held."""
    def do(ctx: Ctx) -> None:
        table = Table("id", "name", "status", "members", "area", "contracted", "capacity", title="teams")
        for team in service.teams_of(ctx, institution):
            view = service.team_view(ctx, team)
            table.add_row(team.id, team.name, team.status, str(len(view.members)), " ".join(view.areas),
                          str(view.contracted), str(view.capacity))
        console.print(table)

    ctx_run(do, "cli", CONSOLE, None)


@app.command("coverage")
def coverage(
    centre: Annotated[Optional[str], typer.Option(help="A centre's institution id: per team")] = None,
    region: Annotated[Optional[str], typer.Option(help="A GB/T 2260 region: per centre (the regional rollup)")] = None,
) -> None:
    """Coverage figures as JSON: residents of the service areas, contracted shares (key populations
    too), services promised and delivered."""
    if bool(centre) == bool(region):
        raise typer.BadParameter("give --centre or --region")

    def do(ctx: Ctx) -> None:
        found = service.centre_coverage(ctx, centre) if centre else service.regional_coverage(ctx, region)
        console.print_json(coverage_out(*found).model_dump_json())

    ctx_run(do, "cli", CONSOLE, None)
