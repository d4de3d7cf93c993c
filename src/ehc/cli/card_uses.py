"""``ehc card-uses``: the card-use table's month partitions on PostgreSQL (docs/operations.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..kit.clock import utcnow
from ..kit.partitions import add_months, month_bounds, month_of
from ..qr import service as qr
from .common import console, err, open_platform

app = typer.Typer(help="Card uses: the table's month partitions (PostgreSQL).", no_args_is_help=True)


@app.command("partitions")
def partitions(
    ahead: Annotated[int, typer.Option(help="Months to make ahead of this one")] = qr.PARTITIONS_AHEAD,
    list_only: Annotated[bool, typer.Option("--list", help="Only list them, make none")] = False,
) -> None:
    """Make this month's partition and AHEAD more (and one for each month DEFAULT holds uses of), then list them."""
    platform = open_platform()
    if platform.settings.is_sqlite:
        console.print("SQLite keeps card uses in one table: there are no partitions to keep")
        return
    with platform.db.session() as session:
        made = [] if list_only else qr.keep_use_partitions(session, ahead=max(0, ahead))
        found = qr.use_partitions(session)
    table = Table("partition", "from (China time)", "to", "rows (estimate)")
    for partition in found:
        if partition.month is None:
            table.add_row(partition.name, "any other month", "", _rows(partition.rows))
        else:
            start, end = month_bounds(partition.month)
            table.add_row(partition.name, f"{start:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}", _rows(partition.rows))
    console.print(table)
    console.print(f"{len(made)} partitions made" + (f": {', '.join(made)}" if made else ""))


@app.command("prune")
def prune(
    keep_months: Annotated[Optional[int], typer.Option(help="Keep this month and this many before it")] = None,
    before: Annotated[Optional[str], typer.Option(help="Or: take out the months before this one (yyyy-mm)")] = None,
    drop: Annotated[bool, typer.Option(help="Drop the months taken out instead of leaving them as tables")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do it (without, only say which months would go)")] = False,
) -> None:
    """Take old months out of the card-use table: their uses leave every list, count and report. Each
    is left as a table of its own to archive (pg_dump -t) and drop, or dropped with --drop."""
    if (keep_months is None) == (before is None):
        err.print("[red]error[/red] say either --keep-months N or --before yyyy-mm")
        raise typer.Exit(2)
    if before is not None:
        try:
            cutoff = date.fromisoformat(f"{before}-01")
        except ValueError:
            err.print(f"[red]error[/red] --before is yyyy-mm, not {before!r}")
            raise typer.Exit(2) from None
    else:
        cutoff = add_months(month_of(utcnow()), -max(0, keep_months or 0))
    platform = open_platform()
    if platform.settings.is_sqlite:
        console.print("SQLite keeps card uses in one table: there are no partitions to prune")
        return
    with platform.db.session() as session:
        if not yes:
            going = [p.name for p in qr.use_partitions(session) if p.month is not None and p.month < cutoff]
            console.print(f"would take out {len(going)} months before {cutoff:%Y-%m}: {', '.join(going) or 'none'}; "
                          "run again with --yes to do it")
            return
        done = qr.detach_use_partitions(session, cutoff, drop=drop)
    console.print(f"{'dropped' if drop else 'detached'} {len(done)} months before {cutoff:%Y-%m}: "
                  f"{', '.join(done) or 'none'}")


def _rows(estimate: int) -> str:
    return "not counted yet" if estimate < 0 else f"{estimate:,}"
