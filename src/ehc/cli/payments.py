"""``ehc payments``: the day's reconciliation, the outbox driver, and the ledger check (docs/payments.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..kit.codes import Channel
from ..kit.context import Actor
from ..kit.errors import Problem
from ..payments import service
from .common import console, fail, open_platform, parse_day

app = typer.Typer(help="Payments: reconcile a day, resume due steps, check the ledger.", no_args_is_help=True)


@app.command("reconcile")
def reconcile(
    day: Annotated[str, typer.Argument(help="The day (China time), yyyy-mm-dd")],
    out: Annotated[Optional[Path], typer.Option(help="Also write the findings as CSV here")] = None,
) -> None:
    """Match the insurer's and the bank's statements of DAY against the ledger, repair what they prove,
    and report the rest (missing, extra, amount mismatch). Exits 1 when something is left unmatched."""
    when = parse_day(day)
    platform = open_platform()
    try:
        with platform.db.session() as session:
            result = service.reconcile(platform.ctx(session, Actor.system("payments-reconcile", Channel.CONSOLE)), when)
    except Problem as problem:
        fail(problem)
    counts = result.counts
    console.print(f"{day}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) if counts else f"{day}: nothing to match")
    left = [f for f in result.findings if f.finding not in ("matched",)]
    if left:
        table = Table("source", "id", "finding", "ours (fen)", "theirs (fen)", "what")
        for f in left:
            table.add_row(f.source, f.platform_id, f.finding, str(f.ours_fen), str(f.theirs_fen), f.detail)
        console.print(table)
    if out is not None:
        out.write_text(service.findings_csv(left), encoding="utf-8")
    if not result.clean:
        raise typer.Exit(1)


@app.command("drive")
def drive() -> None:
    """Run every due payment step now (``ehc serve`` does this every second)."""
    platform = open_platform()
    with platform.db.session() as session:
        ran = service.drive(platform.ctx(session, Actor.system("payments", Channel.CONSOLE)))
        left = len(service.pending(platform.ctx(session, Actor.system("payments", Channel.CONSOLE))))
    console.print(f"{ran} steps run, {left} still due")


@app.command("check-ledger")
def check_ledger() -> None:
    """Prove the books balance: every transaction, and every bill's balance against its status."""
    platform = open_platform()
    with platform.db.session() as session:
        check = service.check_ledger(platform.ctx(session, Actor.system("payments", Channel.CONSOLE)))
    for problem in check.problems:
        console.print(f"[red]✗[/red] {problem}")
    console.print(f"{'balanced' if check.balanced else 'NOT balanced'}: " +
                  ", ".join(f"{a} {b}" for a, b in sorted(check.balances.items())))
    if not check.balanced:
        raise typer.Exit(1)
